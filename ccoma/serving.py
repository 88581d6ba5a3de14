"""Greedy serving of a trained agent network, without MLflow (torch only).

A *policy directory* holds two files:

- ``agent.pt``: the agent network's ``state_dict`` (``torch.save``; loads with ``weights_only=True``);
- ``policy.json``: how to rebuild it: ``{"class": "ccoma.algos.networks.RNNAgent", "kwargs": {...},
  "obs_dim", "n_actions", "n_agents", "hidden", "algo", "weights_sha256"}``.

A policy folder may come from someone else (a shared model store, a download): loading one never
imports or calls anything it names. ``class`` must be one of :data:`NETWORKS` (ccoma's own agent
networks) and its ``kwargs`` exactly that class's typed, bounded arguments; ``agent.pt`` must match
``weights_sha256`` and holds tensors only. Anything else is a one-line CcomaError.

The network follows :class:`ccoma.algos.networks.RNNAgent`'s contract: ``net(inputs [B, N, D],
hidden [B, N, H]) -> (outputs [B, N, A], hidden)`` with inputs built exactly as in training by
:func:`ccoma.algos.networks.agent_inputs` ([obs, last action one-hot, agent id one-hot]).
COMA's outputs are policy logits, the Q-methods' outputs are Q-values: in both cases the greedy action
is the argmax over available actions, so one server fits every method.

:meth:`ccoma.tracking.registry.ModelRegistry.register` wraps a policy directory in an ``mlflow.pyfunc`` model.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ccoma.algos.networks import agent_input_dim, agent_inputs, masked_argmax
from ccoma.errors import CcomaError, excerpt

WEIGHTS = "agent.pt"
SPEC = "policy.json"
MAX_SPEC_BYTES = 64 * 1024
MAX_WEIGHTS_BYTES = 1 << 30
MAX_DIM = 1 << 20  # any size argument above this is not a ccoma network

# The only networks a policy folder may name, with their constructor arguments (all positive ints).
NETWORKS: dict[str, tuple[str, ...]] = {
    "ccoma.algos.networks.RNNAgent": ("input_dim", "n_actions", "hidden_dim"),
}

INPUT_KINDS = {"standard": 0, "mean_field": 1}   # input kind -> extra inputs, in units of n_actions


def build_inputs(obs: torch.Tensor, last: torch.Tensor, n_actions: int, inputs: dict[str, Any]) -> torch.Tensor:
    """The agent network's inputs as in training. obs [B, N, O], last [B, N] (-1 = none) -> [B, N, D]."""
    if inputs.get("kind", "standard") == "mean_field":
        from ccoma.algos.mfq import mean_action, neighbour_mask

        visible = inputs.get("visible_index")
        extra = mean_action(last, neighbour_mask(obs, visible), n_actions)
        return agent_inputs(obs, last, n_actions, extra=extra)
    return agent_inputs(obs, last, n_actions)


def save_policy(net: torch.nn.Module, out_dir: str | Path, *, obs_dim: int, n_agents: int, algo: str,
                kwargs: dict[str, Any] | None = None, inputs: dict[str, Any] | None = None) -> Path:
    """Write ``net``'s weights and constructor arguments into ``out_dir``.

    ``kwargs`` defaults to an RNNAgent's (input_dim, n_actions, hidden_dim), read off its layers.
    ``inputs`` says how the network's inputs are built (``learner.policy_inputs()``): standard
    [obs, last action, agent id], or mean-field (MFQ: the visible neighbours' mean last action too).
    """
    inputs = dict(inputs or {"kind": "standard"})
    if inputs["kind"] not in INPUT_KINDS:
        raise CcomaError(f"save_policy: unknown input kind '{inputs['kind']}' (known: {', '.join(INPUT_KINDS)})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cls = type(net)
    if f"{cls.__module__}.{cls.__qualname__}" not in NETWORKS:
        raise CcomaError(f"save_policy: {cls.__qualname__} is not a servable network (known: {', '.join(NETWORKS)})")
    if kwargs is None:
        kwargs = {"input_dim": net.fc1.in_features, "n_actions": net.fc2.out_features,
                  "hidden_dim": net.hidden_dim}
    n_actions = int(kwargs["n_actions"])
    expected = agent_input_dim(obs_dim, n_actions, n_agents, extra=INPUT_KINDS[inputs["kind"]] * n_actions)
    if kwargs.get("input_dim", expected) != expected:
        raise CcomaError(f"save_policy: network input {kwargs['input_dim']} != {expected} for obs {obs_dim}, "
                         f"{n_actions} actions, {n_agents} agents and '{inputs['kind']}' inputs")
    spec = {
        "class": f"{cls.__module__}.{cls.__qualname__}", "kwargs": kwargs, "obs_dim": int(obs_dim),
        "n_actions": n_actions, "n_agents": int(n_agents), "hidden": int(kwargs["hidden_dim"]),
        "algo": algo, "inputs": inputs,
    }
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save(state, out / WEIGHTS)
    spec["weights_sha256"] = hashlib.sha256((out / WEIGHTS).read_bytes()).hexdigest()
    (out / SPEC).write_text(json.dumps(spec, indent=2, sort_keys=True))
    return out


def _positive_int(spec: dict, key: str, where: str) -> int:
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_DIM:
        raise CcomaError(f"{where}: field '{key}' should be a positive integer, got {excerpt(value)}")
    return value


def check_spec(spec: Any, where: str) -> dict:
    """Validate a policy.json mapping: an allowed network class, exactly its typed arguments, and
    sizes that agree with each other. Returns it unchanged."""
    if not isinstance(spec, dict):
        raise CcomaError(f"{where}: should be a JSON object")
    cls = spec.get("class")
    if cls not in NETWORKS:
        raise CcomaError(f"{where}: field 'class' should be one of {', '.join(NETWORKS)}, got {excerpt(cls)}")
    kwargs = spec.get("kwargs")
    if not isinstance(kwargs, dict) or sorted(kwargs) != sorted(NETWORKS[cls]):
        raise CcomaError(f"{where}: field 'kwargs' should hold exactly {', '.join(NETWORKS[cls])}")
    for key in NETWORKS[cls]:
        _positive_int(kwargs, key, f"{where}: kwargs")
    for key in ("obs_dim", "n_actions", "n_agents", "hidden"):
        _positive_int(spec, key, where)
    extra = _check_inputs(spec.get("inputs", {"kind": "standard"}), spec["obs_dim"], where) * spec["n_actions"]
    if kwargs["n_actions"] != spec["n_actions"] or kwargs["hidden_dim"] != spec["hidden"] or \
            kwargs["input_dim"] != agent_input_dim(spec["obs_dim"], spec["n_actions"], spec["n_agents"], extra):
        raise CcomaError(f"{where}: the network's sizes disagree with obs_dim, n_actions, n_agents and hidden")
    digest = spec.get("weights_sha256")
    if not isinstance(digest, str) or len(digest) != 64:
        raise CcomaError(f"{where}: field 'weights_sha256' (the hash of {WEIGHTS}) is missing")
    return spec


def _check_inputs(inputs: Any, obs_dim: int, where: str) -> int:
    """Validate policy.json's ``inputs``; returns its extra inputs in units of n_actions."""
    if not isinstance(inputs, dict) or inputs.get("kind") not in INPUT_KINDS:
        raise CcomaError(f"{where}: field 'inputs' should be {{kind: {' | '.join(INPUT_KINDS)}}}, got {excerpt(inputs)}")
    if sorted(inputs) not in (["kind"], ["kind", "visible_index"]):
        raise CcomaError(f"{where}: field 'inputs' holds unknown keys ({excerpt(sorted(inputs))})")
    visible = inputs.get("visible_index")
    if visible is not None and (not isinstance(visible, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < obs_dim for i in visible)):
        raise CcomaError(f"{where}: field 'inputs.visible_index' should list observation indices, got {excerpt(visible)}")
    return INPUT_KINDS[inputs["kind"]]


def read_policy_dir(artifact_dir: str | Path) -> tuple[dict, dict]:
    """(spec, agent state_dict) of a policy folder, both checked: see the module docstring."""
    root = Path(artifact_dir)
    if not root.is_dir():
        raise CcomaError(f"{root}: not a policy folder (no such folder)")
    where = str(root / SPEC)
    try:
        if (root / SPEC).stat().st_size > MAX_SPEC_BYTES or (root / WEIGHTS).stat().st_size > MAX_WEIGHTS_BYTES:
            raise CcomaError(f"{root}: not a policy folder ({SPEC} or {WEIGHTS} is far too large)")
        spec = check_spec(json.loads((root / SPEC).read_text(encoding="utf-8")), where)
        blob = (root / WEIGHTS).read_bytes()
    except OSError as exc:
        raise CcomaError(f"{root}: not a policy folder ({exc.strerror}: {Path(exc.filename or root).name})") from None
    except (ValueError, RecursionError) as exc:
        raise CcomaError(f"{where}: not valid JSON ({str(exc).splitlines()[0][:80]})") from None
    if hashlib.sha256(blob).hexdigest() != spec["weights_sha256"]:
        raise CcomaError(f"{root / WEIGHTS}: content does not match weights_sha256 in {SPEC} (changed or damaged)")
    try:
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise CcomaError(f"{root / WEIGHTS}: not a tensor file ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CcomaError(f"{root / WEIGHTS}: should hold a network's tensors only")
    return spec, state


class GreedyPolicy:
    """A loaded agent network acting greedily over available actions.

    ``policy(obs, avail=None)``: ``obs`` [B, N, obs_dim] (one decision per agent) or
    [B, T, N, obs_dim] (whole episodes: the GRU runs over T feeding back its own last actions);
    ``avail`` the matching [..., N, n_actions] 0/1 mask or None (all available).
    Returns int64 actions [B, N] or [B, T, N] as numpy.
    """

    def __init__(self, net: torch.nn.Module, spec: dict[str, Any]):
        self.net = net.eval()
        self.spec = spec
        self.n_agents = spec["n_agents"]
        self.n_actions = spec["n_actions"]
        self.obs_dim = spec["obs_dim"]
        self.hidden_dim = spec["hidden"]

    def init_hidden(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, self.n_agents, self.hidden_dim)  # [B, N, H]

    @torch.no_grad()
    def step(self, obs: torch.Tensor, avail: torch.Tensor, last: torch.Tensor,
             hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One decision: obs [B, N, obs_dim], avail [B, N, A] bool, last [B, N] (-1 = none),
        hidden [B, N, H] -> (actions [B, N], hidden)."""
        out, hidden = self.net(build_inputs(obs, last, self.n_actions, self.spec.get("inputs", {})), hidden)
        return masked_argmax(out, avail), hidden

    def __call__(self, obs: Any, avail: Any = None) -> np.ndarray:
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        if obs_t.dim() not in (3, 4) or tuple(obs_t.shape[-2:]) != (self.n_agents, self.obs_dim):
            raise CcomaError(f"policy input: obs should be [B, N={self.n_agents}, {self.obs_dim}] "
                             f"or [B, T, N, obs_dim], got {list(obs_t.shape)}")
        seq = obs_t if obs_t.dim() == 4 else obs_t.unsqueeze(1)  # [B, T, N, obs_dim]
        if avail is None:
            av = torch.ones(*seq.shape[:3], self.n_actions, dtype=torch.bool)
        else:
            av = torch.as_tensor(np.asarray(avail)) > 0
            av = av if obs_t.dim() == 4 else av.unsqueeze(1)
            if tuple(av.shape) != (*seq.shape[:3], self.n_actions):
                raise CcomaError(f"policy input: avail should be {[*obs_t.shape[:-1], self.n_actions]}, "
                                 f"got {list(np.shape(avail))}")
        b, t = seq.shape[:2]
        hidden = self.init_hidden(b)
        last = torch.full((b, self.n_agents), -1, dtype=torch.long)
        actions = []
        for i in range(t):  # recurrence over time is inherently sequential
            last, hidden = self.step(seq[:, i], av[:, i], last, hidden)
            actions.append(last)
        acts = torch.stack(actions, dim=1).numpy()  # [B, T, N]
        return acts if obs_t.dim() == 4 else acts[:, 0]


def load_policy(artifact_dir: str | Path) -> GreedyPolicy:
    """Rebuild the network saved by :func:`save_policy` and return a greedy policy callable."""
    from ccoma.algos.networks import RNNAgent

    spec, state = read_policy_dir(artifact_dir)
    classes = {"ccoma.algos.networks.RNNAgent": RNNAgent}  # NETWORKS' names -> the classes themselves
    net = classes[spec["class"]](**spec["kwargs"])
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise CcomaError(f"{artifact_dir}: {WEIGHTS} does not fit the network in {SPEC} "
                         f"({str(exc).splitlines()[0][:100]})") from None
    return GreedyPolicy(net, spec)
