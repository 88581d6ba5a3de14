"""Settings of the StarCraft II backend (``RunConfig.sim`` holds their overrides when ``backend: sc2``)."""
from __future__ import annotations

import dataclasses

from ccoma.config import doc


@dataclasses.dataclass(frozen=True)
class Sc2Config:
    """SMAC's interface constants plus how to run the game."""

    step_mul: int = doc("Game loops per agent step (SMAC: 8).", 8)
    move_amount: float = doc("A move order walks toward a point this far away (SMAC: 2).", 2.0)
    shoot_range: float = doc("Centre distance within which 'attack j' is available (SMAC: 6).", 6.0)
    sight_range: float = doc("Agents' observation range (SMAC: 9).", 9.0)
    reward_death_value: float = doc("Reward per enemy killed before scaling (SMAC: 10).", 10.0)
    reward_win: float = doc("Reward for a win before scaling (SMAC: 200).", 200.0)
    reward_scale_rate: float = doc("Episode rewards are scaled so the maximum is this (SMAC: 20).", 20.0)
    map: str = doc("The .SC2Map to play on, relative to the game's Maps folder. '' = SMACv2's empty "
                   "SMAC_Maps/32x32_flat.SC2Map when the arena fits in it, else SMAC_Maps/<the ccoma map's "
                   "sc2_map>.SC2Map.", "")
    ally_unit_ids: str = doc("Unit types the agents are created as: 'rl' (SMACv2's RL copies of the units, the "
                             "last 9 unit types of its maps, whose automatic reactions are off) or 'standard' "
                             "(the game's own units).", "rl")
    difficulty: int = doc("The built-in computer player's difficulty, 1-10 (SMAC: 7).", 7)
    game_version: str = doc("Game version to run ('' = the newest installed).", "")
    timeout_s: int = doc("Seconds to wait for the game to answer one request before it is restarted.", 120)
    max_restarts: int = doc("Consecutive failed restarts of one instance before the job gives up.", 3)
    spawn_wait_loops: int = doc("Game loops to wait for created units to appear (or killed ones to vanish).", 64)
