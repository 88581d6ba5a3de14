"""SMAC's team reward and episode end, for all environments at once (SMAC's ``reward_battle``, its end
bonuses and ``update_units``' end rules); :func:`step_end` is the one end-of-step every backend runs.

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
from typing import NamedTuple

import torch

from ccoma.sim.mechanics import fighting


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


def reward_divisor(n_enemies: int, enemy_total: torch.Tensor, cfg, opts: RewardOptions) -> torch.Tensor:
    """[k] what raw rewards are divided by: max_reward / scale_rate with reward_scale, else 1.
    ``enemy_total`` [k] is the enemies' total max health + shield."""
    max_reward = n_enemies * cfg.reward_death_value + cfg.reward_win + enemy_total
    scale = cfg.reward_scale_rate if opts.reward_scale else max_reward  # unscaled: divide by 1
    return max_reward / scale


class StepEnd(NamedTuple):
    """How one step ended, per environment [B]: ``raw`` is the reward before scaling by max_reward."""

    won: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    raw: torch.Tensor


def step_end(b, n_agents: int, heal: bool, episode_limit: int, opts: RewardOptions, cfg,
             prev_health: torch.Tensor, prev_alive: torch.Tensor) -> StepEnd:
    """SMAC's end of a step on battle ``b`` (after ``b.t`` counted it), from the health + shield [B, U]
    and alive [B, U] the units had before it. ``heal`` (the mechanics' flag: a healer can appear) turns
    on SMAC's ``only_medivac_left``; ``cfg`` gives reward_death_value and reward_win (SimConfig, Sc2Config).

    Plain tensor code with no host syncs: the simulator runs it inside its compiled step.
    """
    N = n_agents
    n_ally, n_enemy = b.alive[:, :N].sum(-1), b.alive[:, N:].sum(-1)
    won = (n_ally > 0) & (n_enemy == 0)
    terminated = (n_ally == 0) | (n_enemy == 0)
    if heal:  # SMAC's only_medivac_left: healers alone cannot fight on
        lost = fighting(b)[:, :N].sum(-1) == 0
        lone_healer = (n_enemy == 1) & (b.alive & (b.col("heal") > 0))[:, N:].any(-1)
        won = ~lost & (won | lone_healer)
        terminated = terminated | lost | won
    truncated = ~terminated & (b.t >= episode_limit)
    # a loss is an end that is neither a win nor a draw (both sides dead), SMAC's game end code -1
    lost = terminated & ~won & ~((n_ally == 0) & (n_enemy == 0))
    raw = smac_reward(opts, cfg.reward_death_value, cfg.reward_win, N, prev_health, b.hp + b.shield,
                      prev_alive, b.alive, won, lost)
    return StepEnd(won, terminated, truncated, raw)
