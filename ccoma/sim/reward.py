"""SMAC's team reward, for all environments at once (SMAC's ``reward_battle`` plus its end bonuses).

Per step, from the health + shield each unit had before the step and has after it:

    dense, positive only (SMAC's default):  |enemy damage + death_value x enemy deaths|
    dense, signed (reward_only_positive off): enemy damage + death_value x enemy deaths
                                            - negative_scale x (ally damage + death_value x ally deaths)
    sparse: 0

then + reward_win on a win (sparse: = 1), + reward_defeat on a loss (sparse: = -1), nothing on a
draw (both sides dead) or a timeout, and, with reward_scale, divided by max_reward / scale_rate where
max_reward = death_value x enemies + reward_win + the enemies' total max health + shield.
"""
from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass(frozen=True)
class RewardOptions:
    """SMAC's reward options beyond those in :class:`ccoma.sim.engine.SimConfig` (death value, win,
    scale rate), with SMAC's defaults."""

    reward_sparse: bool = False
    reward_only_positive: bool = True
    reward_negative_scale: float = 0.5
    reward_defeat: float = 0.0
    reward_scale: bool = True


def smac_reward(opts: RewardOptions, death_value: float, win_value: float, n_agents: int,
                prev_health: torch.Tensor, health: torch.Tensor, prev_alive: torch.Tensor, alive: torch.Tensor,
                won: torch.Tensor, lost: torch.Tensor) -> torch.Tensor:
    """The unscaled reward [B] from health + shield [B, U] and alive [B, U] before and after the step."""
    N = n_agents
    died = prev_alive & ~alive
    if opts.reward_sparse:
        reward = torch.zeros_like(health[:, 0])
        return torch.where(won, 1.0, torch.where(lost, -1.0, reward))
    delta = (prev_health - health) * prev_alive                          # [B, U] damage taken this step
    enemy = delta[:, N:].sum(-1) + death_value * died[:, N:].sum(-1)
    if opts.reward_only_positive:
        reward = enemy.abs()  # abs: regenerating shields can make the damage negative
    else:
        neg = opts.reward_negative_scale
        ally = neg * delta[:, :N].sum(-1) + neg * death_value * died[:, :N].sum(-1)
        reward = enemy - ally
    return reward + win_value * won + opts.reward_defeat * lost
