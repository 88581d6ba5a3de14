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
- Air (medivac): flying units do not collide with ground units, and only weapons with ``anti_air``
  reach them (a marauder ordered to attack a medivac follows it without firing).
- Static (speed 0, spine crawler): never moves and is never pushed; others take the whole overlap.
- Terrain: a map's impassable cells block ground movement (units slide along walls); ``cliffwalk``
  units (colossus) ignore them.
"""
from __future__ import annotations

import dataclasses

import torch

from ccoma.sim.units import COL, GAME_LOOPS_PER_SECOND

HEAL = 4  # order kind: heal the order's target (an ally); engine.IDLE..AMOVE are 0..3


@dataclasses.dataclass
class Mechanics:
    """Static switches (plus the terrain grid) of one environment."""

    heal: bool = False
    splash: bool = False
    suicide: bool = False
    air: bool = False
    static: bool = False
    terrain: torch.Tensor | None = None   # [H, W] bool, True where ground units may stand
    cells_per_unit: tuple[float, float] = (1.0, 1.0)  # terrain cells per map unit along x and y

    @classmethod
    def build(cls, table, terrain: torch.Tensor | None = None,
              arena: tuple[float, float] = (1.0, 1.0)) -> "Mechanics":
        """Flags for the types of ``table`` (a :class:`ccoma.sim.units.UnitTable`)."""
        scale = (terrain.shape[1] / arena[0], terrain.shape[0] / arena[1]) if terrain is not None else (1.0, 1.0)
        return cls(heal=table.uses("heal"), splash=table.uses("splash"), suicide=table.uses("suicide"),
                   air=table.uses("air"), static=any(t.speed == 0 for t in table.types), terrain=terrain,
                   cells_per_unit=scale)


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


def area(b, dist: torch.Tensor, radius: torch.Tensor, alive: torch.Tensor, air: bool) -> torch.Tensor:
    """[B, U_att, U_tgt] bool: opposed living units within the attacker's splash radius (edge distance)."""
    sp = b.col("splash")
    hit = b.opposed[None] & alive[:, None, :] & (dist - radius[:, None, :] <= sp[..., None])
    if air:
        hit = hit & (b.col("air") == 0)[:, None, :]
    return hit


def separation_share(b, alive: torch.Tensor, static: bool, air: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Who collides with whom and the share of an overlap each unit takes.

    Returns (solid [B, U] bool, share [B, U, U] float: the fraction of pair (i, j)'s overlap that i moves).
    """
    solid = alive & (b.col("air") == 0) if air else alive
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
