"""Unit mechanics beyond shooting: healing, area damage, suicide attacks, flying, static buildings, terrain.

Each mechanic is switched on by a static flag computed once from the unit types an environment can
produce (:meth:`Mechanics.build`), so a map without medivacs never runs a line of the heal code and
its compiled step is the same graph as before these mechanics existed. All code is batched over
``[B, U]`` (no loop over units).

- Heal (medivac): a healer never fires; it restores ``heal`` hit points per second to one living,
  biological, ground ally within ``range`` (edge to edge), spending ``heal_cost`` energy per point,
  and regenerates ``energy_regen`` per second. Ordered to heal an ally out of range, it flies to it;
  idle or attack-moving, it heals the nearest damaged ally in range (StarCraft II's autocast).
- Splash (baneling): the attack hits every opposed ground unit whose edge is within ``splash`` of the
  attacker's centre, each with its own bonus damage; ``suicide`` units die when they attack.
- Lance (colossus): each hit also lands on every opposed ground unit along a line of half-length
  ``lance`` through the target, across the attacker's line of fire (StarCraft II's Thermal Lances: two
  beams sweeping offsets -1.25..1.25 about the target with searches of radius 0.15, each beam hitting
  a unit once). The sweep's 0.34 s and the damage delay are not modelled: the line is hit at once.
- Air (medivac): flying units do not collide with ground units, and only weapons with ``anti_air``
  reach them (a marauder ordered to attack a medivac follows it without firing). Cliff walkers
  (colossus) do not collide with ground units either (StarCraft II's colossus steps over them).
- Static (speed 0, spine crawler): never moves and is never pushed; others take the whole overlap.
- Terrain: a map's impassable cells block ground movement (units slide along walls); ``cliffwalk``
  units (colossus) ignore them. Where walls make straight routes impossible (2c_vs_64zg, corridor,
  so_many_baneling), ground units walking or chasing steer by shortest paths over the cell grid
  (distances precomputed once per map), as StarCraft II's pathfinding routes them round the walls.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import torch

from ccoma.sim.units import GAME_LOOPS_PER_SECOND

HEAL = 4  # order kind: heal the order's target (an ally); engine.IDLE..AMOVE are 0..3


@dataclasses.dataclass
class Mechanics:
    """Static switches (plus the terrain grid) of one environment."""

    heal: bool = False
    splash: bool = False
    suicide: bool = False
    air: bool = False
    static: bool = False
    walker: bool = False                  # cliff walkers (colossus): no ground collisions
    regen: bool = False                   # some type regenerates hit points (Zerg)
    lance: bool = False                   # some type's attack sweeps a line (colossus)
    terrain: torch.Tensor | None = None   # [H, W] bool, True where ground units may stand
    cells_per_unit: tuple[float, float] = (1.0, 1.0)  # terrain cells per map unit along x and y
    paths: torch.Tensor | None = None     # [C, C] path lengths between cells (None: straight lines suffice)
    steps: torch.Tensor | None = None     # [C, 8] bool: a ground unit may step from a cell to its k-th neighbour

    @classmethod
    def build(cls, table, terrain: torch.Tensor | None = None, arena: tuple[float, float] = (1.0, 1.0),
              starts: tuple = ()) -> "Mechanics":
        """Flags for the types of ``table`` (a :class:`ccoma.sim.units.UnitTable`); ``starts`` are the
        map's spawn points (x, y): only the ground connected to them decides whether paths are needed."""
        scale = (terrain.shape[1] / arena[0], terrain.shape[0] / arena[1]) if terrain is not None else (1.0, 1.0)
        paths = steps = None
        if terrain is not None:
            cells = tuple(sorted({(min(int(x * scale[0]), terrain.shape[1] - 1), min(int(y * scale[1]),
                                   terrain.shape[0] - 1)) for x, y in starts}))
            found = path_field(tuple(tuple(bool(c) for c in row) for row in terrain.cpu().tolist()), cells)
            if found is not None:
                paths, steps = (x.to(terrain.device) for x in found)
        return cls(heal=table.uses("heal"), splash=table.uses("splash"), suicide=table.uses("suicide"),
                   air=table.uses("air"), static=any(t.speed == 0 for t in table.types),
                   walker=table.uses("cliffwalk"), regen=table.uses("hp_regen"), lance=table.uses("lance"),
                   terrain=terrain,
                   cells_per_unit=scale, paths=paths, steps=steps)


NONE = Mechanics()


def reach(b) -> torch.Tensor:
    """[B, U_att, U_tgt] bool: the attacker's weapon can hit the target (air needs anti-air)."""
    air = b.col("air") > 0
    return ~air[:, None, :] | (b.col("anti_air") > 0)[:, :, None]


def heal_targets_ok(b) -> torch.Tensor:
    """[B, U_healer, U_target] bool: a living, biological, ground unit of the healer's own side."""
    bio = b.col("is_biological") > 0
    ground = b.col("air") == 0
    tgt = b.alive & bio & ground
    return (~b.opposed)[None] & tgt[:, None, :]


def heal(b, kind: torch.Tensor, target: torch.Tensor, edge: torch.Tensor, loops: float) -> torch.Tensor:
    """Heal for ``loops`` game loops and regenerate energy; returns ``chase`` [B, U]: healers to move.

    ``kind``/``target`` are the units' orders, ``edge`` [B, U, U] the edge-to-edge distances.
    """
    dt = loops / GAME_LOOPS_PER_SECOND
    healer = b.alive & (b.col("heal") > 0)
    ok = heal_targets_ok(b)                                                   # [B, U, U]
    in_reach = edge <= b.col("range")[..., None]
    missing = b.col("hp") - b.hp                                              # [B, U]
    ordered = (kind == HEAL) & torch.gather(ok, 2, target[..., None]).squeeze(-1)
    auto_ok = ok & in_reach & (missing > 0)[:, None, :]
    best, auto_t = torch.where(auto_ok, edge, torch.full_like(edge, float("inf"))).min(-1)
    idle = (kind == 0) | (kind == 3) | ((kind == HEAL) & ~ordered)            # IDLE, AMOVE, lost target
    t = torch.where(ordered, target, auto_t)
    t_in = torch.gather(in_reach, 2, t[..., None]).squeeze(-1)
    active = healer & ((ordered & t_in) | (idle & torch.isfinite(best)))
    energy_cap = b.energy / b.col("heal_cost").clamp(min=1e-6)
    amount = torch.minimum(torch.minimum(b.col("heal") * dt, torch.gather(missing, 1, t)), energy_cap)
    amount = amount.clamp(min=0.0) * active
    gained = torch.zeros_like(b.hp).scatter_add(1, t, amount)
    b.hp = torch.minimum(b.hp + gained, b.col("hp"))
    b.heal_at = torch.where(active, t, b.heal_at)
    regen = b.col("energy_regen") * dt * b.alive
    b.energy = torch.minimum(b.energy - amount * b.col("heal_cost") + regen, b.col("energy_max"))
    return healer & ordered & ~t_in


def heal_avail(b, shoot_range: float, idx=slice(None)) -> torch.Tensor:
    """[k, N, E] bool: SMAC's attack bits with a healer's redirected to allies.

    SMAC (``get_avail_agent_actions``, map type MMM): a medivac's action 6+j heals ally j, available
    when ally j is alive, not a medivac and within the shoot range (centre distance); bits beyond
    the number of allies stay off. Other agents' bits are the usual ones (enemy alive, in range).
    """
    N, E = b.N, b.E
    pos, alive, heal_rate = b.pos[idx], b.alive[idx], b.col("heal")[idx]
    a_pos, a_alive = pos[:, :N], alive[:, :N]
    d_e = (pos[:, None, N:] - a_pos[:, :, None]).norm(dim=-1)                 # [k, N, E]
    enemy_bits = a_alive[..., None] & alive[:, None, N:] & (d_e <= shoot_range)
    d_a = (a_pos[:, None, :] - a_pos[:, :, None]).norm(dim=-1)                # [k, N, N]
    healable = a_alive & (heal_rate[:, :N] == 0)
    ally_bits = a_alive[..., None] & healable[:, None, :] & (d_a <= shoot_range)
    if N >= E:
        ally_bits = ally_bits[..., :E]
    else:
        ally_bits = torch.cat([ally_bits, ally_bits.new_zeros(*ally_bits.shape[:2], E - N)], dim=-1)
    healer = (heal_rate[:, :N] > 0)[..., None]
    return torch.where(healer, ally_bits, enemy_bits)


def fighting(b) -> torch.Tensor:
    """[B, U] living units that are not healers (SMAC's ``only_medivac_left``)."""
    return b.alive & (b.col("heal") == 0)


LANCE_SEARCH = 0.15  # radius of each Thermal Lances search (ThermalLancesE's AreaArray), map units


def area(b, dist: torch.Tensor, radius: torch.Tensor, alive: torch.Tensor, air: bool,
         shoot_at: torch.Tensor | None = None) -> torch.Tensor:
    """[B, U_att, U_tgt] bool: who an area attacker's attack hits. Splash: opposed living units within
    the attacker's splash radius (edge distance). Lance (``shoot_at`` given): the target and opposed
    living units whose edge is within LANCE_SEARCH of the line through the target across the line of fire."""
    sp = b.col("splash")
    hit = b.opposed[None] & alive[:, None, :] & (dist - radius[:, None, :] <= sp[..., None])
    if shoot_at is not None:
        lance = b.col("lance")                                               # [B, U] half-lengths
        centre = torch.gather(b.pos, 1, shoot_at[..., None].expand(-1, -1, 2))  # [B, U_att, 2] the target
        fire = centre - b.pos
        norm = fire.norm(dim=-1, keepdim=True)
        ahead = torch.where(norm > 1e-6, fire / norm.clamp(min=1e-6), torch.tensor([1.0, 0.0], device=b.device))
        across = torch.stack([-ahead[..., 1], ahead[..., 0]], dim=-1)         # the sweep's direction
        rel = b.pos[:, None, :, :] - centre[:, :, None, :]                   # [B, U_att, U_tgt, 2]
        along = (rel * across[:, :, None, :]).sum(-1)
        off = (rel * ahead[:, :, None, :]).sum(-1)
        gap = torch.hypot(along - along.clamp(-lance[..., None], lance[..., None]), off)
        line = b.opposed[None] & alive[:, None, :] & (gap - radius[:, None, :] <= LANCE_SEARCH)
        target = shoot_at[..., None] == torch.arange(b.U, device=b.device)
        hit = torch.where((lance > 0)[..., None], line | target, hit)
    if air:
        hit = hit & (b.col("air") == 0)[:, None, :]
    return hit


def separation_share(b, alive: torch.Tensor, static: bool, unsolid: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Who collides with whom and the share of an overlap each unit takes.

    Returns (solid [B, U] bool, share [B, U, U] float: the fraction of pair (i, j)'s overlap that i moves).
    ``unsolid``: the roster has flyers or cliff walkers, which collide with nobody.
    """
    solid = alive & (b.col("air") == 0) & (b.col("cliffwalk") == 0) if unsolid else alive
    if not static:
        return solid, torch.full_like(b.hp, 0.5)[:, :, None].expand(-1, -1, b.U)
    fixed = b.col("speed") == 0
    half = torch.full_like(b.hp, 0.5)[:, :, None].expand(-1, -1, b.U)
    share = torch.where(fixed[:, None, :], torch.ones_like(half), half)
    share = torch.where(fixed[:, :, None], torch.zeros_like(half), share)
    return solid, share


def passable(mech: Mechanics, pos: torch.Tensor) -> torch.Tensor:
    """[...] bool: the terrain cell under each point ``pos`` [..., 2] is open."""
    grid = mech.terrain
    H, W = grid.shape
    ix = (pos[..., 0] * mech.cells_per_unit[0]).floor().long().clamp(0, W - 1)
    iy = (pos[..., 1] * mech.cells_per_unit[1]).floor().long().clamp(0, H - 1)
    return grid[iy, ix]


def block_terrain(b, old: torch.Tensor, new: torch.Tensor, mech: Mechanics) -> torch.Tensor:
    """Positions [B, U, 2] after terrain: a ground unit stepping into a closed cell slides along the
    wall (keeps only the open axis of its step) or stays; cliff walkers go anywhere."""
    slide_x = torch.stack([new[..., 0], old[..., 1]], dim=-1)
    slide_y = torch.stack([old[..., 0], new[..., 1]], dim=-1)
    out = torch.where(passable(mech, slide_y)[..., None], slide_y, old)
    out = torch.where(passable(mech, slide_x)[..., None], slide_x, out)
    out = torch.where(passable(mech, new)[..., None], new, out)
    walker = (b.col("cliffwalk") > 0)[..., None]
    return torch.where(walker, new, out)


# The 8 neighbours of a cell (dx, dy) and the length of a step to each, in cells.
_NEIGHBOURS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1))
_STEP_LEN = tuple(math.sqrt(2.0) if dx and dy else 1.0 for dx, dy in _NEIGHBOURS)


def _shift(x: torch.Tensor, dx: int, dy: int, fill) -> torch.Tensor:
    """out[..., y, x] = x[..., y - dy, x - dx] (``fill`` where that falls outside)."""
    H, W = x.shape[-2:]
    out = torch.full_like(x, fill)
    out[..., max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = \
        x[..., max(-dy, 0):H + min(-dy, 0), max(-dx, 0):W + min(-dx, 0)]
    return out


# A map needs pathfinding when some shortest path is this many cells longer than the straight
# (octile) distance: staircase edges of octagonal arenas cost less than a cell, real walls much more.
DETOUR_CELLS = 2.0


@functools.lru_cache(maxsize=16)
def path_field(grid_rows: tuple, starts: tuple = ()) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Shortest 8-connected path lengths between the cells of a terrain grid (row 0 = y 0).

    Returns (paths [C, C], steps [C, 8]) with C = H * W cells (inf between cells that do not connect),
    or None when straight lines are good enough: on the ground connected to the ``starts`` cells
    ((x, y) pairs; all open cells when empty), no path is more than ``DETOUR_CELLS`` longer than the
    octile distance (checked from 64 evenly spread sources). A diagonal step needs both cells
    beside it open (no corner cutting). Computed once per map (scipy's Dijkstra).
    """
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components, shortest_path

    grid = torch.tensor(grid_rows, dtype=torch.bool)                          # [H, W]
    H, W = grid.shape
    C = H * W
    can = []  # can[k][y, x]: a unit on (x, y) may step to its k-th neighbour
    for dx, dy in _NEIGHBOURS:
        ok = grid & _shift(grid, -dx, -dy, False)
        if dx and dy:
            ok = ok & _shift(grid, -dx, 0, False) & _shift(grid, 0, -dy, False)
        can.append(ok)
    steps = torch.stack([c.flatten() for c in can], dim=-1)                  # [C, 8]
    src, k = steps.nonzero(as_tuple=True)
    dxy = torch.tensor(_NEIGHBOURS)
    dst = (src // W + dxy[k, 1]) * W + (src % W + dxy[k, 0])
    length = torch.tensor(_STEP_LEN)[k]
    graph = coo_matrix((length.numpy(), (src.numpy(), dst.numpy())), shape=(C, C)).tocsr()
    _, label = connected_components(graph, directed=False)
    keep = grid.flatten().numpy()
    if starts:
        keep = keep & np.isin(label, [label[y * W + x] for x, y in starts])
    cells = np.flatnonzero(keep)
    xs, ys = np.arange(C) % W, np.arange(C) // W

    def excess(sources) -> float:  # the most a path from ``sources`` exceeds the straight octile distance
        d = shortest_path(graph, method="D", indices=sources)[:, cells]
        ax, ay = np.abs(xs[sources][:, None] - xs[cells]), np.abs(ys[sources][:, None] - ys[cells])
        octile = np.maximum(ax, ay) + (math.sqrt(2.0) - 1) * np.minimum(ax, ay)
        return float(np.where(np.isfinite(d), d - octile, 0.0).max()) if d.size else 0.0

    if len(cells) == 0 or excess(cells[:: max(1, len(cells) // 64)]) <= DETOUR_CELLS:
        return None  # a wall worth a detour shows from most of 64 evenly spread sources
    dist = torch.from_numpy(shortest_path(graph, method="D").astype(np.float32))
    return dist, steps


def waypoint(b, mech: Mechanics, goal: torch.Tensor) -> torch.Tensor:
    """[B, U, 2]: where each ground unit should head to reach ``goal`` [B, U, 2] round the walls.

    A unit whose shortest path is longer than the straight (octile) distance heads for the centre of
    the neighbouring cell that starts that path; otherwise, and for cliff walkers and flyers, the goal.
    """
    H, W = mech.terrain.shape
    sx, sy = mech.cells_per_unit
    cx = (b.pos[..., 0] * sx).floor().long().clamp(0, W - 1)
    cy = (b.pos[..., 1] * sy).floor().long().clamp(0, H - 1)
    gx = (goal[..., 0] * sx).floor().long().clamp(0, W - 1)
    gy = (goal[..., 1] * sy).floor().long().clamp(0, H - 1)
    cur, g = cy * W + cx, gy * W + gx                                         # [B, U] cell ids
    C = H * W
    flat = mech.paths.reshape(-1)
    dxy = torch.tensor(_NEIGHBOURS, device=goal.device)                       # [8, 2]
    nb = (cy[..., None] + dxy[:, 1]).clamp(0, H - 1) * W + (cx[..., None] + dxy[:, 0]).clamp(0, W - 1)
    step_len = torch.tensor(_STEP_LEN, device=goal.device)
    score = flat[g[..., None] * C + nb] + step_len                            # [B, U, 8]
    score = torch.where(mech.steps[cur], score, torch.full_like(score, float("inf")))
    best, k = score.min(-1)
    ax, ay = (gx - cx).abs().float(), (gy - cy).abs().float()
    octile = torch.maximum(ax, ay) + (math.sqrt(2.0) - 1) * torch.minimum(ax, ay)
    detour = flat[g * C + cur] > octile + 0.5
    ground = (b.col("cliffwalk") == 0) & (b.col("air") == 0)
    use = detour & ground & torch.isfinite(best)
    n = torch.gather(nb, 2, k[..., None]).squeeze(-1)
    centre = torch.stack([((n % W).float() + 0.5) / sx, ((n // W).float() + 0.5) / sy], dim=-1)
    return torch.where(use[..., None], centre, goal)
