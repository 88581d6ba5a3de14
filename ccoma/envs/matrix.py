"""The two-step matrix game of the QMIX paper as a :class:`~ccoma.envs.base.BatchedEnv`.

Two agents, two actions (0 = A, 1 = B). In state 1 every joint action pays 0 and agent 1's action
picks the next state: A -> 2A, B -> 2B. State 2A pays 7 for every joint action; state 2B pays
[[0, 1], [1, 8]] (row = agent 1's action). The episode then terminates. Agents and the state see
the current state as a one-hot [1, 2A, 2B]; the final observation after the last step is all zeros.

A monotonic mixer (QMIX) can represent 2B and learns to reach 8; an additive one (VDN) cannot and
settles on 7. That makes it the quickest check of a value-factorisation implementation.
"""
from __future__ import annotations

import torch

from ccoma.envs.base import EpisodeSource, StepOut
from ccoma.errors import CcomaError

PAYOFF_2A = ((7.0, 7.0), (7.0, 7.0))
PAYOFF_2B = ((0.0, 1.0), (1.0, 8.0))
_STATES = 4  # 1, 2A, 2B, and the terminal marker (all-zero observation)


class TwoStepGame:
    """B independent copies of the two-step game, stepped together, auto-resetting."""

    n_agents = 2
    n_enemies = 0
    n_actions = 2
    obs_dim = 3
    state_dim = 3
    episode_limit = 2

    def __init__(self, n_envs: int = 1, device: str | torch.device = "cpu", seed: int = 0):
        self.n_envs = n_envs
        self.device = torch.device(device)
        self._payoff = torch.tensor([PAYOFF_2A, PAYOFF_2B], device=self.device)  # [2, 2, 2]
        self._onehot = torch.cat([torch.eye(3), torch.zeros(1, 3)]).to(self.device)  # [4, 3]
        self.reset()

    def reset(self) -> None:
        self._s = torch.zeros(self.n_envs, dtype=torch.int64, device=self.device)
        self._t = torch.zeros(self.n_envs, dtype=torch.int64, device=self.device)
        self._ret = torch.zeros(self.n_envs, device=self.device)

    def get_obs(self) -> torch.Tensor:  # [B, N, 3]
        return self._onehot[self._s].unsqueeze(1).expand(-1, self.n_agents, -1).clone()

    def get_state(self) -> torch.Tensor:  # [B, 3]
        return self._onehot[self._s].clone()

    def get_avail_actions(self) -> torch.Tensor:  # [B, N, 2]
        return torch.ones(self.n_envs, self.n_agents, self.n_actions, dtype=torch.bool, device=self.device)

    def step(self, actions: torch.Tensor) -> StepOut:
        """actions [B, 2] int64 -> StepOut; finished games reset automatically."""
        a = actions.to(self.device).long()
        first = self._s == 0
        in_two = (self._s - 1).clamp(min=0)                                  # 0 = 2A, 1 = 2B
        reward = torch.where(first, torch.zeros_like(self._ret), self._payoff[in_two, a[:, 0], a[:, 1]])
        next_s = torch.where(first, 1 + a[:, 0], torch.full_like(self._s, _STATES - 1))
        self._s, self._t = next_s, self._t + 1
        self._ret = self._ret + reward
        terminated = ~first
        zeros_b = torch.zeros(self.n_envs, dtype=torch.bool, device=self.device)
        out = StepOut(
            reward=reward, terminated=terminated, truncated=zeros_b,
            won=terminated & (reward >= 8.0),
            episode_return=torch.where(terminated, self._ret, torch.zeros_like(self._ret)),
            episode_length=torch.where(terminated, self._t, torch.zeros_like(self._t)),
            phase=torch.zeros(self.n_envs, dtype=torch.int64, device=self.device), unseen=zeros_b,
            obs=self.get_obs(), state=self.get_state(), avail=self.get_avail_actions(),
        )
        self._s = torch.where(terminated, torch.zeros_like(self._s), self._s)
        self._t = torch.where(terminated, torch.zeros_like(self._t), self._t)
        self._ret = torch.where(terminated, torch.zeros_like(self._ret), self._ret)
        return out

    def get_env_info(self) -> dict:
        return {"state_shape": self.state_dim, "obs_shape": self.obs_dim, "n_actions": self.n_actions,
                "n_agents": self.n_agents, "episode_limit": self.episode_limit}

    def set_source(self, source: EpisodeSource) -> None:
        raise CcomaError("the two-step matrix game has fixed episodes; it takes no episode source")
