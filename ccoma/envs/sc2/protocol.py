"""s2clientprotocol messages of the backend: create/kill units, agents' raw commands, raw units -> arrays.

The facts follow SMAC/SMACv2: abilities stop 4, move 16 and attack 23; a move goes ``move_amount``
map units north (+y), south, east (+x) or west from the unit's position; an attack targets the enemy's
tag; a no-op sends nothing. Agents are player 1, enemies player 2. On SMACv2's maps the agents are the
map's RL copies of the units (the last 9 unit types, in alphabetical order); enemies are the game's own.
"""
from __future__ import annotations

import numpy as np

STOP, MOVE, ATTACK = 4, 16, 23
# SMACv2's RL unit types, in the order its maps define them (the last 9 unit types of the map's data)
RL_UNITS = ("baneling", "colossus", "hydralisk", "marauder", "marine", "medivac", "stalker", "zealot", "zergling")
# the game's own unit types (pysc2.lib.units)
STANDARD_UNITS = {"baneling": 9, "colossus": 4, "hydralisk": 107, "marauder": 51, "marine": 48, "medivac": 54,
                  "stalker": 74, "zealot": 73, "zergling": 105}
RACES = {"protoss": 3, "terran": 1, "zerg": 2}  # s2clientprotocol common_pb2.Race values


def pb():
    """The protobuf modules (imported on first use: the sim path never loads them)."""
    from s2clientprotocol import common_pb2, debug_pb2, raw_pb2, sc2api_pb2

    return common_pb2, debug_pb2, raw_pb2, sc2api_pb2


def unit_ids(names: tuple[str, ...], n_data_units: int, ally_unit_ids: str) -> tuple[dict, dict]:
    """(ally name -> type id, enemy name -> type id) for the vocabulary ``names``.

    ``n_data_units`` is the length of the game's unit data (``RequestData``), which locates the RL copies.
    """
    from ccoma.errors import ConfigError

    unknown = [n for n in names if n not in STANDARD_UNITS]
    if unknown:
        raise ConfigError("sc2", f"unit '{unknown[0]}' has no StarCraft II unit id here (known: "
                                 f"{', '.join(sorted(STANDARD_UNITS))})")
    enemy = {n: STANDARD_UNITS[n] for n in names}
    if ally_unit_ids == "standard":
        return dict(enemy), enemy
    if ally_unit_ids != "rl":
        raise ConfigError("sc2", f"ally_unit_ids must be 'rl' or 'standard', got {ally_unit_ids!r}")
    first = n_data_units - len(RL_UNITS)
    return {n: first + RL_UNITS.index(n) for n in names}, enemy


def create_commands(types: list[int], owner: int, pos: np.ndarray) -> list:
    """One ``DebugCreateUnit`` per unit: ``types`` [n] game type ids, ``pos`` [n, 2] map coordinates."""
    common, debug, _, _ = pb()
    return [debug.DebugCommand(create_unit=debug.DebugCreateUnit(
        unit_type=int(t), owner=owner, pos=common.Point2D(x=float(x), y=float(y)), quantity=1))
        for t, (x, y) in zip(types, pos.tolist())]


def kill_command(tags: list[int]):
    _, debug, _, _ = pb()
    return debug.DebugCommand(kill_unit=debug.DebugKillUnit(tag=[int(t) for t in tags]))


def agent_commands(actions: np.ndarray, tags: np.ndarray, pos: np.ndarray, enemy_tags: np.ndarray,
                   move_amount: float):
    """A ``RequestAction`` for one game: ``actions`` [N] SMAC action ids, ``tags`` [N], ``pos`` [N, 2],
    ``enemy_tags`` [E]. No-ops (dead agents) send nothing."""
    common, _, raw, sc2api = pb()
    step = np.array([[0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [-1.0, 0.0]]) * move_amount
    out = []
    for a, tag, (x, y) in zip(actions.tolist(), tags.tolist(), pos.tolist()):  # one message per unit
        if a == 0:
            continue
        if a == 1:
            cmd = raw.ActionRawUnitCommand(ability_id=STOP, unit_tags=[tag], queue_command=False)
        elif a <= 5:
            dx, dy = step[a - 2]
            cmd = raw.ActionRawUnitCommand(ability_id=MOVE, unit_tags=[tag], queue_command=False,
                                           target_world_space_pos=common.Point2D(x=x + dx, y=y + dy))
        else:
            cmd = raw.ActionRawUnitCommand(ability_id=ATTACK, unit_tags=[tag], queue_command=False,
                                           target_unit_tag=int(enemy_tags[a - 6]))
        out.append(sc2api.Action(action_raw=raw.ActionRaw(unit_command=cmd)))
    return sc2api.RequestAction(actions=out)


def raw_arrays(units, tags: np.ndarray) -> dict[str, np.ndarray]:
    """The slots' units (``tags`` [U]) in an observation's raw units: alive, pos, health, shield, maxima,
    weapon cooldown, type id and engaged target tag, each [U, ...]. A tag not in the observation is dead."""
    by_tag = {u.tag: u for u in units}  # protobuf units can only be read one by one
    U = len(tags)
    rows = np.zeros((U, 8), dtype=np.float64)
    target = np.zeros(U, dtype=np.uint64)
    alive = np.zeros(U, dtype=bool)
    for i, tag in enumerate(tags.tolist()):
        u = by_tag.get(tag)
        if u is None or u.health <= 0:
            continue
        alive[i] = True
        rows[i] = (u.pos.x, u.pos.y, u.health, u.shield, u.health_max, u.shield_max, u.weapon_cooldown, u.unit_type)
        target[i] = u.engaged_target_tag
    return {"alive": alive, "pos": rows[:, 0:2], "health": rows[:, 2], "shield": rows[:, 3],
            "health_max": rows[:, 4], "shield_max": rows[:, 5], "cooldown": rows[:, 6],
            "type": rows[:, 7].astype(np.int64), "target": target}


def match_slots(units, owner: int, types: list[int], pos: np.ndarray) -> np.ndarray | None:
    """Tags [n] of the created units of ``owner`` for slots of ``types`` [n] at ``pos`` [n, 2]: each slot
    takes the nearest unclaimed unit of its type. None while some slot has no unit yet."""
    cands = [(u.tag, u.unit_type, u.pos.x, u.pos.y) for u in units if u.owner == owner]
    taken: set[int] = set()
    tags = np.zeros(len(types), dtype=np.uint64)
    for i, (t, (x, y)) in enumerate(zip(types, pos.tolist())):
        best = min(((cx - x) ** 2 + (cy - y) ** 2, tag) for tag, ct, cx, cy in cands if ct == t and tag not in taken) \
            if any(ct == t and tag not in taken for tag, ct, _, _ in cands) else None
        if best is None:
            return None
        taken.add(best[1])
        tags[i] = best[1]
    return tags
