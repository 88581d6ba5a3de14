"""Episode replay buffer declared by a scheme: padded episodes, a ``filled`` mask, a fixed-size ring.

Every field is stored for ``T + 1`` slots where T is the episode limit (pymarl's layout): slot t
holds the decision at step t (obs, state, avail, actions) and what it earned (reward, terminated);
the slot after an episode's last step holds its final observation/state/avail, which is what a
truncated episode bootstraps from. ``filled[t]`` is true for the episode's real steps only.

A sampled batch is a dict of tensors ``[batch, t_max + 1, ...]`` trimmed to the longest filled
episode in it (``t_max``), so short episodes do not pay for the longest possible one.
"""
from __future__ import annotations

import dataclasses

import torch

from ccoma.errors import CcomaError


@dataclasses.dataclass(frozen=True)
class Field:
    """One buffer field: per-slot shape (after the agent dim when ``per_agent``) and dtype.

    ``store`` is a narrower dtype to keep it in, for values it holds exactly (action ids in int8);
    samples come back as ``dtype``.
    """

    shape: tuple[int, ...] = ()
    dtype: torch.dtype = torch.float32
    per_agent: bool = False
    store: torch.dtype | None = None


Scheme = dict[str, Field]


def standard_scheme(obs_dim: int, state_dim: int, n_actions: int) -> Scheme:
    """The fields every built-in learner reads."""
    return {
        "obs": Field((obs_dim,), torch.float32, per_agent=True),
        "state": Field((state_dim,), torch.float32),
        "avail": Field((n_actions,), torch.bool, per_agent=True),
        "actions": Field((), torch.int64, per_agent=True,
                         store=torch.int8 if n_actions <= 127 else torch.int16),  # ids -1..A-1: exact
        "reward": Field((), torch.float32),
        "terminated": Field((), torch.bool),
        "filled": Field((), torch.bool),
    }


def allocate(scheme: Scheme, batch: int, slots: int, n_agents: int, device, float_dtype=None) -> dict:
    """Zeroed tensors ``[batch, slots, (N,), *shape]`` for every field."""
    out = {}
    for name, f in scheme.items():
        dtype = float_dtype if (float_dtype is not None and f.dtype == torch.float32) else (f.store or f.dtype)
        shape = (batch, slots) + ((n_agents,) if f.per_agent else ()) + tuple(f.shape)
        out[name] = torch.zeros(shape, dtype=dtype, device=device)
    return out


class EpisodeBuffer:
    """A ring of ``capacity`` padded episodes stored as preallocated tensors.

    ``float_dtype=torch.float16`` halves the memory of float fields (a 2s3z buffer of 5000
    episodes is 1.26 GB with float32 fields, 0.65 GB with float16; float16 rounds observations, so
    it is not the default); samples always come back as float32. Action ids are stored as int8.
    """

    def __init__(self, scheme: Scheme, n_agents: int, episode_limit: int, capacity: int,
                 device: str | torch.device = "cpu", float_dtype: torch.dtype | None = None):
        if "filled" not in scheme:
            raise CcomaError("episode buffer: the scheme needs a 'filled' field")
        if capacity <= 0:
            raise CcomaError(f"episode buffer: capacity must be positive, got {capacity}")
        self.scheme = dict(scheme)
        self.n_agents = n_agents
        self.slots = episode_limit + 1
        self.capacity = capacity
        self.device = torch.device(device)
        self.data = allocate(self.scheme, capacity, self.slots, n_agents, self.device, float_dtype)
        self.lengths = torch.zeros(capacity, dtype=torch.int64, device=self.device)
        self.ids = torch.zeros(capacity, dtype=torch.int64, device=self.device)  # insertion serial numbers
        # episodes whose inserter vouched that every slot after the final one is zero (the rollout's
        # do): a checkpoint stores only their live slots without scanning their padding
        self.zero_padded = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        self.ptr = 0
        self.size = 0
        self.episodes_in = 0

    def __len__(self) -> int:
        return self.size

    def insert(self, episodes: dict[str, torch.Tensor], zero_padded: bool = False) -> None:
        """Add k episodes: every scheme field as ``[k, slots, ...]`` (extra keys are ignored).

        ``zero_padded``: the caller guarantees every slot after each episode's final one is zero in
        every field (as the rollout writes them), so checkpoints need not check it."""
        missing = sorted(set(self.scheme) - set(episodes))
        if missing:
            raise CcomaError(f"episode buffer: inserted episodes lack field '{missing[0]}'")
        k = episodes["filled"].shape[0]
        if k == 0:
            return
        if k > self.capacity:  # only the newest fit
            episodes = {name: v[-self.capacity:] for name, v in episodes.items()}
            k = self.capacity
        idx = (self.ptr + torch.arange(k, device=self.device)) % self.capacity
        for name in self.scheme:
            value = episodes[name].to(self.device)
            if value.shape[1:] != self.data[name].shape[1:]:
                raise CcomaError(f"episode buffer: field '{name}' has shape {tuple(value.shape[1:])}, "
                                 f"expected {tuple(self.data[name].shape[1:])}")
            self.data[name][idx] = value.to(self.data[name].dtype)
        self.lengths[idx] = episodes["filled"].to(self.device).reshape(k, self.slots).sum(1).long()
        self.ids[idx] = self.episodes_in + torch.arange(k, device=self.device)
        self.zero_padded[idx] = zero_padded
        self.ptr = (self.ptr + k) % self.capacity
        self.size = min(self.size + k, self.capacity)
        self.episodes_in += k

    def can_sample(self, batch_size: int) -> bool:
        return self.size >= batch_size

    def sample(self, batch_size: int, device: str | torch.device | None = None,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """``batch_size`` distinct episodes, trimmed to ``t_max + 1`` slots, on ``device``."""
        if not self.can_sample(batch_size):
            raise CcomaError(f"episode buffer: asked for {batch_size} episodes, holds {self.size}")
        if batch_size == self.size:
            idx = torch.arange(self.size)
        else:
            idx = torch.randperm(self.size, generator=generator)[:batch_size]
        return self.gather(idx.to(self.device), device)

    def latest(self, k: int, device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
        """The k most recently inserted episodes, oldest first (what on-policy learners train on)."""
        k = min(k, self.size)
        idx = (self.ptr - 1 - torch.arange(k, device=self.device)) % self.capacity
        return self.gather(idx.flip(0), device)

    def gather(self, idx: torch.Tensor, device=None) -> dict[str, torch.Tensor]:
        t_max = int(self.lengths[idx].max())
        device = self.device if device is None else torch.device(device)
        out = {}
        for name, f in self.scheme.items():
            value = self.data[name][idx, : t_max + 1]
            if value.dtype != f.dtype:  # float16 / narrow integer storage
                value = value.to(f.dtype)
            out[name] = value.to(device, non_blocking=True)
        out["episode_id"] = self.ids[idx].to(device)  # [k]: which episodes these are (0 = first ever inserted)
        return out


def buffer_for(learner, n_agents: int, episode_limit: int, replay_size: int, n_envs: int,
               device: str | torch.device = "cpu", float_dtype: torch.dtype | None = None) -> EpisodeBuffer:
    """The buffer a learner's data regime asks for.

    On-policy learners (``learner.on_policy``) get room for the episodes that can finish before
    their next update (``batch_size - 1`` waiting plus one batched step of ``n_envs``); every update
    uses those and only those. Replay learners get ``replay_size`` episodes (the run's budget).
    ``float_dtype``: the storage of float fields (see :class:`EpisodeBuffer`).
    """
    capacity = learner.config.batch_size + n_envs if learner.on_policy else replay_size
    return EpisodeBuffer(learner.scheme(), n_agents, episode_limit, capacity, device, float_dtype)
