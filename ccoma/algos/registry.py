"""The one registry of methods: ``algo: qmix`` -> learner class + typed config, and the methods
every learner gives (``qmix`` frozen, ``c-qmix`` continual, ``qmix-explore`` the sampling control).

Adding a learner: its file (a :class:`~ccoma.algos.base.Learner` subclass and its config dataclass)
and one ``AlgoSpec`` line below. Its methods, the CLI's choices, ``RunConfig`` validation, serving
(via the learner's ``policy_inputs``) and docs/config.md all read this registry. Learner modules are
imported only when a learner is built, so reading the method list stays cheap.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Mapping

from ccoma.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class AlgoSpec:
    name: str
    learner_path: str     # "module:Class"
    config_path: str      # "module:Class"
    summary: str

    @property
    def learner(self) -> type:
        return _load(self.learner_path)

    @property
    def config(self) -> type:
        return _load(self.config_path)


def _load(path: str) -> type:
    module, attr = path.split(":")
    return getattr(importlib.import_module(module), attr)


REGISTRY: dict[str, AlgoSpec] = {s.name: s for s in (
    AlgoSpec("iql", "ccoma.algos.q_learner:QLearner", "ccoma.algos.q_learner:IQLConfig",
             "independent recurrent Q-learners on the team reward"),
    AlgoSpec("vdn", "ccoma.algos.q_learner:QLearner", "ccoma.algos.q_learner:VDNConfig",
             "value decomposition: Q_tot = sum of agent utilities"),
    AlgoSpec("qmix", "ccoma.algos.q_learner:QLearner", "ccoma.algos.q_learner:QMIXConfig",
             "monotonic state-conditioned mixing of agent utilities"),
    AlgoSpec("coma", "ccoma.algos.coma:COMALearner", "ccoma.algos.coma:COMAConfig",
             "actor-critic with a centralised critic and counterfactual baseline (on-policy)"),
    AlgoSpec("mfq", "ccoma.algos.mfq:MFQLearner", "ccoma.algos.mfq:MFQConfig",
             "mean-field Q: own observation + neighbours' mean action"),
)}

# deployment mode -> how a method name is formed from the learner's name
MODE_NAMES = {"frozen": "{algo}", "continual": "c-{algo}", "frozen-explore": "{algo}-explore"}
REFERENCE_NAME = "{algo}-reference"   # `evaluate --reference`: a from-scratch learner on the unseen phase
PAPER_METHODS = ("c-coma", "coma", "qmix", "vdn", "c-qmix", "c-vdn")
# what `ccoma evaluate` runs by default: the paper's six and the sampling control beside C-COMA
DEFAULT_METHODS = PAPER_METHODS + ("coma-explore",)


def methods() -> dict[str, tuple[str, str]]:
    """Every method: name -> (learner registry key, deployment mode)."""
    return {MODE_NAMES[mode].format(algo=algo): (algo, mode) for algo in REGISTRY for mode in MODE_NAMES}


def method(name: str, where: str = "--method") -> tuple[str, str]:
    """(learner, mode) of a method name; an unknown name is a ConfigError listing the known ones."""
    known = methods()
    if name not in known:
        raise ConfigError(where, f"unknown method '{name}' (known: {', '.join(known)})")
    return known[name]


def method_name(algo: str, mode: str, where: str = "--algo") -> str:
    get(algo, where)
    if mode not in MODE_NAMES:
        raise ConfigError("--mode", f"unknown deployment mode '{mode}' (known: {', '.join(MODE_NAMES)})")
    return MODE_NAMES[mode].format(algo=algo)


def get(name: str, where: str = "algo") -> AlgoSpec:
    if name not in REGISTRY:
        raise ConfigError(where, f"unknown algorithm '{name}' (known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[name]


def make_config(name: str, overrides: Mapping[str, Any] | None = None, where: str = "algo", prefix: str = ""):
    """The typed config of ``name`` with YAML-style overrides; unknown keys are ConfigErrors
    (``prefix`` names the mapping they came from in the message, e.g. "algo.qmix.")."""
    from ccoma.config import build

    return build(get(name, where).config, overrides or {}, where, prefix=prefix)


def make(name: str, env_info: dict, device: str = "cpu", config: Any = None, where: str = "algo"):
    """Build a learner; ``config`` is its config dataclass, a mapping of overrides, or None."""
    spec = get(name, where)
    if config is None or isinstance(config, Mapping):
        config = make_config(name, config, where)
    elif not isinstance(config, spec.config):
        raise ConfigError(where, f"algorithm '{name}' needs a {spec.config.__name__}, got {type(config).__name__}")
    return spec.learner(config, env_info, device)
