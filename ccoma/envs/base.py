"""The batched multi-agent environment contract every backend follows.

Batched first: a backend steps ``B`` environments at once as tensors on one device and resets
finished ones automatically. Learners and rollouts only ever see this interface.

Shapes (B = number of environments, N = agents, E = enemies, A = actions):
    obs     [B, N, obs_dim] float32     state   [B, state_dim] float32
    avail   [B, N, A]       bool        actions [B, N] int64

``step(actions)`` returns a :class:`StepOut`. Its ``obs``/``state``/``avail`` are those *after*
the step and *before* any automatic reset (the final observation of an episode that just ended);
``get_obs()``/``get_state()``/``get_avail_actions()`` after the step give the next decision's
inputs, which for a finished environment are the first observation of its new episode.
"""
from __future__ import annotations

import dataclasses
from typing import Protocol

import torch


@dataclasses.dataclass
class EpisodeSpecs:
    """What the next episodes look like, for ``k`` environments being reset.

    Unit types index the environment's unit vocabulary (``unit_types``), which fixes the
    one-hot order and so the observation size. Positions are map coordinates.
    """

    ally_types: torch.Tensor    # [k, N] int64
    enemy_types: torch.Tensor   # [k, E] int64
    ally_pos: torch.Tensor      # [k, N, 2] float32
    enemy_pos: torch.Tensor     # [k, E, 2] float32
    phase: torch.Tensor         # [k] int64, which scenario phase produced the episode (0 if static)
    unseen: torch.Tensor        # [k] bool, the episode is an unseen (post-shift) situation


class EpisodeSource(Protocol):
    """Produces episode specs; the scenario scheduler implements this, so does a static map."""

    unit_types: tuple[str, ...]  # the vocabulary: union of all types the source can produce
    n_agents: int
    n_enemies: int

    def sample(self, k: int, generator: torch.Generator) -> EpisodeSpecs:
        """Specs for ``k`` new episodes (on CPU; the env moves them to its device)."""
        ...


@dataclasses.dataclass
class StepOut:
    """The result of one batched step (all tensors have leading dim B)."""

    reward: torch.Tensor        # [B] float32, SMAC-scaled team reward of this step
    terminated: torch.Tensor    # [B] bool, a true end (win, loss or draw): do not bootstrap
    truncated: torch.Tensor     # [B] bool, the episode limit was reached (SMAC's info["episode_limit"])
    won: torch.Tensor           # [B] bool, battle won at this step
    episode_return: torch.Tensor  # [B] float32, the return of the episode that ended here (0 elsewhere)
    episode_length: torch.Tensor  # [B] int64, its length in agent steps (0 elsewhere)
    phase: torch.Tensor         # [B] int64, phase of the episode this step belonged to
    unseen: torch.Tensor        # [B] bool, whether that episode was an unseen situation
    obs: torch.Tensor           # [B, N, obs_dim] after the step, before auto-reset
    state: torch.Tensor         # [B, state_dim]
    avail: torch.Tensor         # [B, N, A] bool
    # [B] bool or None: the episode ending here was cut short by a backend failure (a StarCraft II game
    # that died and was restarted); it is not a real end, so rollouts neither store nor count it
    dropped: torch.Tensor | None = None

    @property
    def done(self) -> torch.Tensor:  # [B] bool
        return self.terminated | self.truncated


class BatchedEnv(Protocol):
    """What rollouts and learners rely on. ``ccoma.sim.env.SimEnv`` is the reference backend."""

    n_envs: int
    n_agents: int
    n_enemies: int
    n_actions: int
    obs_dim: int
    state_dim: int
    episode_limit: int
    device: torch.device

    def reset(self) -> None: ...
    def step(self, actions: torch.Tensor) -> StepOut: ...
    def get_obs(self) -> torch.Tensor: ...
    def get_state(self) -> torch.Tensor: ...
    def get_avail_actions(self) -> torch.Tensor: ...
    def get_env_info(self) -> dict: ...
    def set_source(self, source: EpisodeSource) -> None: ...

    def get_rng_state(self) -> dict:
        """Everything random about the episodes still to come (CPU tensors and numbers only, so a
        ``weights_only`` checkpoint holds it)."""
        ...

    def set_rng_state(self, state: dict) -> None:
        """Restore :meth:`get_rng_state`; the next :meth:`reset` deals the same episodes as then."""
        ...

    def reseed(self, seed: int, source: EpisodeSource | None = None) -> None:
        """Become what a new env of this size, ``seed`` and ``source`` would be from the next
        :meth:`reset`, keeping what is costly to make (game processes)."""
        ...
