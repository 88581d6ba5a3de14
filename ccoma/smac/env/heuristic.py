"""SMAC's ``heuristic_ai``: each agent attacks (or heals) a target it keeps until the target dies.

As SMAC's ``get_agent_action_heuristic``: an agent without a living target takes the nearest living
enemy (a marauder skips medivacs); a medivac on an MMM map takes the nearest damaged living
non-medivac ally and drops it once healed. With ``heuristic_rest``, an attack (heal) that is not
available becomes a move one step toward the target, along the larger of the two offsets.
An agent with no possible target gets action 0 (SMAC sends no order then; here it stops).
"""
from __future__ import annotations

import numpy as np


def heuristic_actions(targets: np.ndarray, pos: np.ndarray, alive: np.ndarray, health: np.ndarray,
                      names: list[str], n_agents: int, avail: np.ndarray, rest: bool, mmm: bool) -> np.ndarray:
    """Update ``targets`` [N] (-1: none) in place and return the agents' action ids [N].

    ``pos`` [U, 2], ``alive`` [U], ``health`` [U] (fraction of max) and ``names`` [U] describe the
    units (agents first); ``avail`` [N, A] is the agents' availability mask.
    """
    N = n_agents
    medivac = np.array([n == "medivac" for n in names]) & mmm
    healer = medivac[:N]
    # candidates [N, U]: enemies for fighters, damaged non-medivac allies for medivacs
    side_enemy = np.arange(len(names)) >= N
    fighter_ok = side_enemy[None, :] & alive[None, :]
    marauder = np.array([n == "marauder" for n in names[:N]])
    fighter_ok = fighter_ok & ~(marauder[:, None] & medivac[None, :])
    heal_ok = ~side_enemy[None, :] & alive[None, :] & ~medivac[None, :] & (health[None, :] < 1.0)
    ok = np.where(healer[:, None], heal_ok, fighter_ok)
    # keep a living (for medivacs: still damaged) target; otherwise pick the nearest candidate
    tgt_unit = np.where(healer, targets, targets + N)
    has = targets >= 0
    keep = has & ok[np.arange(N), np.clip(tgt_unit, 0, len(names) - 1)]
    d = np.linalg.norm(pos[None, :, :] - pos[:N, None, :], axis=-1)
    d = np.where(ok, d, np.inf)
    best = d.argmin(axis=1)
    found = np.isfinite(d[np.arange(N), best])
    new = np.where(healer, best, best - N)
    targets[:] = np.where(keep, targets, np.where(found, new, -1))
    actions = np.where(targets >= 0, 6 + targets, 0)
    if rest:
        blocked = (targets >= 0) & ~avail[np.arange(N), actions].astype(bool)
        tgt_pos = pos[np.clip(np.where(healer, targets, targets + N), 0, len(names) - 1)]
        delta = tgt_pos - pos[:N]
        horizontal = np.abs(delta[:, 0]) > np.abs(delta[:, 1])
        move = np.where(horizontal, np.where(delta[:, 0] > 0, 4, 5), np.where(delta[:, 1] > 0, 2, 3))
        actions = np.where(blocked, move, actions)
    return actions.astype(np.int64)
