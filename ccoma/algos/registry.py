"""``algo: qmix`` -> learner class + typed config. Adding a method: one file and one line here."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import torch

from ccoma.algos.base import Learner
from ccoma.algos.coma import COMAConfig, COMALearner
from ccoma.algos.mfq import MFQConfig, MFQLearner
from ccoma.algos.q_learner import IQLConfig, QLearner, QMIXConfig, VDNConfig
from ccoma.config import build
from ccoma.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class AlgoSpec:
    name: str
    learner: type
    config: type
    summary: str


REGISTRY: dict[str, AlgoSpec] = {s.name: s for s in (
    AlgoSpec("iql", QLearner, IQLConfig, "independent recurrent Q-learners on the team reward"),
    AlgoSpec("vdn", QLearner, VDNConfig, "value decomposition: Q_tot = sum of agent utilities"),
    AlgoSpec("qmix", QLearner, QMIXConfig, "monotonic state-conditioned mixing of agent utilities"),
    AlgoSpec("coma", COMALearner, COMAConfig, "actor-critic with a centralised critic and counterfactual baseline"),
    AlgoSpec("mfq", MFQLearner, MFQConfig, "mean-field Q: own observation + neighbours' mean action"),
)}


def get(name: str, where: str = "algo") -> AlgoSpec:
    if name not in REGISTRY:
        raise ConfigError(where, f"unknown algorithm '{name}' (known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[name]


def make_config(name: str, overrides: Mapping[str, Any] | None = None, where: str = "algo"):
    """The typed config of ``name`` with YAML-style overrides; unknown keys are ConfigErrors."""
    return build(get(name, where).config, overrides or {}, where)


def make(name: str, env_info: dict, device: str | torch.device = "cpu",
         config: Any = None, where: str = "algo") -> Learner:
    """Build a learner; ``config`` is its config dataclass, a mapping of overrides, or None."""
    spec = get(name, where)
    if config is None or isinstance(config, Mapping):
        config = make_config(name, config, where)
    elif not isinstance(config, spec.config):
        raise ConfigError(where, f"algorithm '{name}' needs a {spec.config.__name__}, got {type(config).__name__}")
    return spec.learner(config, env_info, device)
