"""The learner interface every method implements, and the pieces they share.

A learner is built as ``Learner(config, env_info, device)`` where ``env_info`` is what
``BatchedEnv.get_env_info()`` returns (state_shape, obs_shape, n_actions, n_agents, episode_limit).

    init_hidden(batch) -> hidden                                   # [batch, N, H]
    act(obs, avail, last_actions, hidden, t_env, mode) -> (actions, hidden)
        obs [B, N, O] float, avail [B, N, A] bool, last_actions [B, N] int64 (-1 = episode start),
        mode "explore" (behaviour policy) or "greedy" (evaluation); actions [B, N] int64.
        Acting only ever uses the agent network (never a critic or mixer).
    train_step(batch, t_env, episode=None) -> {name: float}
        batch: the dict :meth:`ccoma.data.buffer.EpisodeBuffer.sample` returns ([B, T+1, ...]).
        ``episode`` is the number of episodes accounted for so far (for episode-based target
        updates; :meth:`Rollout.run` passes ``episodes_seen + episodes_per_update``); without it, or
        if it goes backwards, the learner assumes ``config.episodes_per_update`` episodes per call.
    networks() -> {name: nn.Module}        e.g. {"agent": ..., "mixer": ...} or {"agent": ..., "critic": ...}
    state_dict() / load_state_dict(sd)     plain tensors and Python scalars (torch.load(weights_only=True))
    add_regularizer(network_name, fn)      fn() -> scalar tensor, added to the loss that trains that network
    scheme() -> Scheme                     the episode-buffer fields the learner reads
    on_policy                              class attribute: True = every update uses only the episodes
                                           produced since the previous one (the harness obeys it);
                                           False = replay (capacity: the run's budget)
    exploration(t_env) / exploration_schedule()   the behaviour policy's exploration level / its schedule
    fisher_losses(batch, t_env) -> {network: [B]}  per-episode losses whose gradients are the per-sample
                                           scores of the EWC Fisher (no optimiser step)
    policy_inputs() -> dict                how a served agent network's inputs are built (serving)

The learner never decides which parameters learn: the harness sets ``requires_grad``. Optimisers hold
every parameter and skip those without a gradient, and gradients are cleared to ``None`` each step,
so a frozen parameter is never moved.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
from typing import Callable

import torch
import torch.nn as nn

from ccoma.checkpoint import snapshot
from ccoma.config import doc
from ccoma.data.buffer import Field, Scheme, standard_scheme


@contextlib.contextmanager
def update_threads(n: int):
    """Within the block, torch uses ``n`` intra-op threads (then the previous count again). Jobs act and
    step the simulator on one thread (``RunConfig.threads``: more would not pay at 32 environments,
    and a compiled step is traced for one thread count); ``Rollout`` runs learner updates inside this.
    Thread counts above one regroup the sums inside matrix products (different rounding), and only
    the calling thread flushes subnormals (``flushed_denormals``)."""
    before = torch.get_num_threads()
    if n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def flushed_denormals():
    """Within the block, subnormal floats (magnitudes below 1.2e-38) are flushed to zero on this
    thread's CPU (x86 FTZ/DAZ); the thread's previous mode is restored after it, so other code in the
    process (libraries that rely on IEEE subnormals) never sees the change. ``Rollout`` runs every
    learner update inside it.

    RMSprop's running mean of squared gradients decays toward zero for inputs that stay silent, and
    tiny gradients square into the subnormal range; x86 cores compute on subnormals tens of times
    slower. COMA's ~100 critic steps per update make it common: at 250K steps its updates took 139 ms
    with subnormals and 106 ms without (docs/throughput.md). Flushing changes only values below
    1.2e-38, far under RMSprop's eps (1e-5). ``CCOMA_FLUSH_DENORMAL=0`` keeps IEEE subnormals.
    """
    if os.environ.get("CCOMA_FLUSH_DENORMAL", "1") == "0" or flushing_denormals():
        yield
        return
    if not torch.set_flush_denormal(True):  # this CPU has no such mode
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def flushing_denormals() -> bool:
    """Whether this thread's CPU flushes subnormals now (a subnormal made and used under its mode)."""
    return float(torch.tensor([1e-39]) * torch.tensor([1.0])) == 0.0


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
    """Fields every learner shares (pymarl / C-COMA paper defaults)."""

    lr: float = doc("Learning rate (RMSprop) for every network; C-COMA paper: 0.0005.", 5e-4)
    rms_alpha: float = doc("RMSprop smoothing constant.", 0.99)
    rms_eps: float = doc("RMSprop epsilon.", 1e-5)
    gamma: float = doc("Discount factor.", 0.99)
    grad_norm_clip: float = doc("Gradient norm clip per optimiser step.", 10.0)
    batch_size: int = doc("Episodes per training batch.", 32)
    episodes_per_update: int = doc(
        "Train once every this many finished episodes (pymarl: once per 8 parallel episodes).", 8)
    hidden_dim: int = doc("GRU hidden size of the agent network.", 64)
    target_update_interval: int = doc(
        "Copy the target network(s) every this many episodes (value methods) or critic steps (COMA).", 200)


def linear_schedule(start: float, finish: float, steps: int, t: int) -> float:
    """Linear anneal from ``start`` to ``finish`` over ``steps`` env steps, then hold."""
    if steps <= 0:
        return finish
    frac = min(max(t, 0) / steps, 1.0)
    return start + frac * (finish - start)


def rmsprop(params, config: LearnerConfig, lr: float | None = None) -> torch.optim.RMSprop:
    # foreach: the same update as the per-tensor loop, in one call per step (bit-identical, faster
    # for COMA's many small critic steps; benchmarks/learn_throughput.py)
    return torch.optim.RMSprop(list(params), lr=config.lr if lr is None else lr,
                               alpha=config.rms_alpha, eps=config.rms_eps, foreach=True)


def trainable(params) -> list[nn.Parameter]:
    return [p for p in params if p.requires_grad]


def optimise(loss: torch.Tensor, optimiser: torch.optim.Optimizer, params: list[nn.Parameter],
             clip: float) -> float:
    """Backward + clip + step over the parameters that currently learn; returns the grad norm.

    Parameters with ``requires_grad=False`` get no gradient and so are skipped by the optimiser.
    When nothing learns (everything frozen) the step is a no-op.
    """
    optimiser.zero_grad(set_to_none=True)
    live = trainable(params)
    if not live or not loss.requires_grad:
        return 0.0
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(live, clip, foreach=True)
    optimiser.step()
    return float(norm)


def hard_update(target: nn.Module, source: nn.Module) -> None:
    target.load_state_dict(source.state_dict())


def frozen_copy(module: nn.Module) -> nn.Module:
    """A target network: a copy that never receives gradients."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


class Learner:
    """Base class: config, shapes, regularisers and (de)serialisation shared by every method."""

    on_policy = False

    def __init__(self, config: LearnerConfig, env_info: dict, device: str | torch.device = "cpu"):
        self.config = config
        self.device = torch.device(device)
        self.n_agents = int(env_info["n_agents"])
        self.n_actions = int(env_info["n_actions"])
        self.obs_dim = int(env_info["obs_shape"])
        self.state_dim = int(env_info["state_shape"])
        self.episode_limit = int(env_info["episode_limit"])
        self.env_info = dict(env_info)
        self._regularizers: dict[str, list[Callable[[], torch.Tensor]]] = {}
        self.train_steps = 0
        self.episodes_seen = 0

    # -- interface -----------------------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def init_hidden(self, batch: int) -> torch.Tensor:  # [batch, N, H]
        return torch.zeros(batch, self.n_agents, self.config.hidden_dim, device=self.device)

    def act(self, obs, avail, last_actions, hidden, t_env: int, mode: str = "explore"):
        raise NotImplementedError

    def train_step(self, batch: dict, t_env: int, episode: int | None = None) -> dict[str, float]:
        raise NotImplementedError

    def scheme(self) -> Scheme:
        return standard_scheme(self.obs_dim, self.state_dim, self.n_actions)

    def exploration(self, t_env: int) -> float:
        """The behaviour policy's exploration level at schedule step ``t_env``."""
        raise NotImplementedError

    def exploration_schedule(self) -> str:
        """The exploration schedule in words (logged, and printed in reports)."""
        raise NotImplementedError

    def fisher_losses(self, batch: dict, t_env: int) -> dict[str, torch.Tensor]:
        """Per-episode losses ``{network: [B]}`` whose gradients are the EWC Fisher's per-sample scores."""
        raise NotImplementedError

    def policy_inputs(self) -> dict:
        """How serving rebuilds the agent network's inputs: [obs, last action, agent id] by default."""
        return {"kind": "standard"}

    # -- regularisers (the harness's L2/EWC anchors) ------------------------------------------
    def add_regularizer(self, network_name: str, fn: Callable[[], torch.Tensor]) -> None:
        if network_name not in self.networks():
            raise KeyError(f"unknown network '{network_name}' (known: {', '.join(self.networks())})")
        self._regularizers.setdefault(network_name, []).append(fn)

    def clear_regularizers(self) -> None:
        self._regularizers.clear()

    def regularization(self, *network_names: str) -> torch.Tensor:
        total = torch.zeros((), device=self.device)
        for name in network_names:
            for fn in self._regularizers.get(name, ()):
                total = total + fn()
        return total

    # -- bookkeeping ---------------------------------------------------------------------------
    def _count_episodes(self, episode: int | None) -> int:
        """Episodes accounted for so far (monotonic: it drives episode-based target updates).

        The caller's count when given; without one, or when it goes backwards (a counter that
        restarted), assume ``config.episodes_per_update`` new episodes.
        """
        if episode is None or episode < self.episodes_seen:
            self.episodes_seen += self.config.episodes_per_update
        else:
            self.episodes_seen = int(episode)
        return self.episodes_seen

    def _check_mode(self, mode: str) -> None:
        if mode not in ("explore", "greedy"):
            raise ValueError(f"mode must be 'explore' or 'greedy', got {mode!r}")

    def _modules(self) -> dict[str, nn.Module]:
        """Everything with weights to save: the named networks plus targets."""
        return self.networks()

    def _optimisers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def _counters(self) -> dict[str, int]:
        return {"train_steps": self.train_steps, "episodes_seen": self.episodes_seen}

    def state_dict(self) -> dict:
        """A snapshot (tensors are cloned, so later training does not change it)."""
        return snapshot({
            "modules": {k: m.state_dict() for k, m in self._modules().items()},
            "optimisers": {k: o.state_dict() for k, o in self._optimisers().items()},
            "counters": dict(self._counters()),
        })

    def load_state_dict(self, sd: dict) -> None:
        for k, m in self._modules().items():
            m.load_state_dict(sd["modules"][k])
        for k, o in self._optimisers().items():
            if k in sd.get("optimisers", {}):
                o.load_state_dict(sd["optimisers"][k])
        for k, v in sd.get("counters", {}).items():
            setattr(self, k, v)

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, non_blocking=True)


__all__ = ["Field", "Learner", "LearnerConfig", "linear_schedule", "rmsprop", "optimise",
           "hard_update", "frozen_copy", "trainable"]
