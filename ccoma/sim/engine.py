"""The batched combat engine: movement, collisions, arena edges, weapons, damage, shields.

Everything is a tensor over ``[B, U]`` (B environments, U = N agents + E enemies; agents first).
There is no Python loop over units or environments; the only loop is over the few physics
sub-ticks of one agent step. Who gives the enemies their orders is not decided here: an opponent
object (:mod:`ccoma.sim.opponents`) writes enemy orders, the agents' actions write agent orders,
and the engine carries them out.

Time is counted in StarCraft II game loops (22.4 per second at Faster speed). One agent step is
``step_mul`` loops (SMAC: 8), split into ``substeps`` ticks. Weapon cooldowns carry their
overshoot from tick to tick, so the rate of fire is exact on average and the n-th shot of a duel
lands within one tick of its true time whatever ``substeps`` is.
"""
from __future__ import annotations

import dataclasses

import torch

from ccoma.config import doc
from ccoma.sim import mechanics as mech_
from ccoma.sim import rng
from ccoma.sim.mechanics import HEAL, NONE, Mechanics
from ccoma.sim.units import ATTRIBUTES, COL, GAME_LOOPS_PER_SECOND

# Order kinds (HEAL = 4 lives in ccoma.sim.mechanics)
IDLE, MOVE, ATTACK, AMOVE = 0, 1, 2, 3
N_ATTR = len(ATTRIBUTES)


@dataclasses.dataclass(frozen=True)
class SimConfig:
    """Physics and interface constants of the built-in simulator (SMAC defaults)."""

    step_mul: int = doc("Game loops per agent step (SMAC: 8 = 0.357 s at Faster speed).", 8)
    substeps: int = doc("Physics ticks per agent step. 2 keeps duel timings within a tick of "
                        "StarCraft II's and chases smooth; 1 is faster, 8 is loop-exact.", 2)
    cooldown_jitter: bool = doc("Add StarCraft II's -1..+2 game-loop jitter after each attack.", True)
    collisions: bool = doc("Units push each other apart (no overlap).", True)
    collision_passes: int = doc("Relaxation passes per tick that push overlapping units apart.", 2)
    shield_regen_delay: float = doc("Seconds without damage before shields regenerate.", 10.0)
    shield_regen_rate: float = doc("Shield points regenerated per second.", 2.0)
    move_amount: float = doc("A move order walks toward a point this far away (SMAC: 2).", 2.0)
    shoot_range: float = doc("Centre distance within which 'attack j' is available (SMAC: 6).", 6.0)
    sight_range: float = doc("Agents' observation range (SMAC: 9).", 9.0)
    reward_death_value: float = doc("Reward per enemy killed before scaling (SMAC: 10).", 10.0)
    reward_win: float = doc("Reward for a win before scaling (SMAC: 200).", 200.0)
    reward_scale_rate: float = doc("Episode rewards are scaled so the maximum is this (SMAC: 20).", 20.0)
    opponent: str = doc("The enemy's AI: 'sticky' (SC2-like, default), 'nearest', 'hold' "
                        "(stand and fire) or 'passive' (a target dummy).", "sticky")


class Battle:
    """All mutable state of B battles. Tensors are ``[B, U, ...]`` unless noted."""

    def __init__(self, n_envs: int, n_agents: int, n_enemies: int, device: torch.device):
        B, U = n_envs, n_agents + n_enemies
        f32 = dict(dtype=torch.float32, device=device)
        self.B, self.N, self.E, self.U, self.device = B, n_agents, n_enemies, U, device
        # [U] unit indices for the cooldown's keyed hash. A stored tensor, not an ``arange`` in the step:
        # traced into a compiled step, an ``arange`` becomes the kernel's index variable, and inductor
        # then writes the hash's 64-bit constant plus a 32-bit index, which Triton refuses to compile
        # (seen with torch 2.11 on CUDA: "Scalar ... is out of range for type int32")
        self.unit_ids = torch.arange(U, device=device)
        self.pos = torch.zeros(B, U, 2, **f32)
        self.hp = torch.zeros(B, U, **f32)
        self.shield = torch.zeros(B, U, **f32)
        self.cooldown = torch.zeros(B, U, **f32)          # game loops until the weapon is ready
        self.since_damage = torch.zeros(B, U, **f32)      # game loops since last damage taken
        self.energy = torch.zeros(B, U, **f32)            # healers' energy (0 for everyone else)
        self.stats = torch.zeros(B, U, len(COL), **f32)   # per-unit stats (see units.STAT_COLUMNS)
        self.types = torch.zeros(B, U, dtype=torch.long, device=device)
        self.alive = torch.zeros(B, U, dtype=torch.bool, device=device)
        self.order_kind = torch.zeros(B, U, dtype=torch.long, device=device)
        self.order_target = torch.zeros(B, U, dtype=torch.long, device=device)
        self.order_point = torch.zeros(B, U, 2, **f32)
        self.shot_at = torch.full((B, U), -1, dtype=torch.long, device=device)  # last target fired at this step
        self.heal_at = torch.full((B, U), -1, dtype=torch.long, device=device)  # last unit healed this step
        self.rally = torch.zeros(B, 2, **f32)             # [B, 2] the agents' spawn (enemy attack-move goal)
        self.env_seed = torch.zeros(B, dtype=torch.long, device=device)
        self.episode = torch.zeros(B, dtype=torch.long, device=device)
        self.t = torch.zeros(B, dtype=torch.long, device=device)  # agent steps into the episode
        side = torch.zeros(U, dtype=torch.long, device=device)
        side[n_agents:] = 1
        self.side = side                                   # [U] 0 agent, 1 enemy
        self.opposed = side[:, None] != side[None, :]      # [U, U]

    def col(self, name: str) -> torch.Tensor:  # [B, U]
        return self.stats[..., COL[name]]


def rows_writer(idx: torch.Tensor):
    """``put(old, new)`` for resetting battles ``idx`` [k]: writes ``new`` ([k, ...] or a scalar) into
    those rows of ``old`` in place and returns ``old``."""
    def put(old: torch.Tensor, new) -> torch.Tensor:
        old[idx] = new
        return old
    return put


def where_writer(mask: torch.Tensor):
    """``put(old, new)`` for resetting the battles where ``mask`` [B]: ``new`` ([B, ...] or anything that
    broadcasts) in those rows, ``old`` in the others, as a new tensor (what a compiled graph wants)."""
    def put(old: torch.Tensor, new) -> torch.Tensor:
        return torch.where(mask.view(-1, *(1,) * (old.dim() - 1)), new, old)
    return put


def reset_envs(b: Battle, idx: torch.Tensor, stats_table: torch.Tensor, types: torch.Tensor,
               pos: torch.Tensor) -> None:
    """Start new battles in environments ``idx`` ([k]) with unit ``types`` [k, U] and ``pos`` [k, U, 2]."""
    reset_battles(b, rows_writer(idx), stats_table, types, pos)


def reset_battles(b: Battle, put, stats_table: torch.Tensor, types: torch.Tensor, pos: torch.Tensor,
                  rally: torch.Tensor | None = None) -> torch.Tensor:
    """Start new battles in the rows ``put`` writes (:func:`rows_writer`, :func:`where_writer`) with unit
    ``types`` [., U] and ``pos`` [., U, 2]; ``rally`` (the enemies' attack-move goal) defaults to the
    agents' mean start. Returns the new units' stats [., U, S]."""
    stats = stats_table[types]                              # [., U, S]
    b.types, b.stats, b.pos = put(b.types, types), put(b.stats, stats), put(b.pos, pos)
    b.hp, b.shield = put(b.hp, stats[..., COL["hp"]]), put(b.shield, stats[..., COL["shield"]])
    b.cooldown, b.since_damage = put(b.cooldown, 0.0), put(b.since_damage, 0.0)
    b.energy = put(b.energy, stats[..., COL["energy_start"]])
    b.alive = put(b.alive, True)
    b.order_kind, b.order_target, b.order_point = put(b.order_kind, IDLE), put(b.order_target, 0), put(b.order_point, pos)
    b.rally = put(b.rally, pos[:, : b.N].mean(dim=1) if rally is None else rally)
    b.t = put(b.t, 0)
    return stats


def formation(centers: torch.Tensor, n: int, spacing: float, jitter: torch.Tensor) -> torch.Tensor:
    """Place ``n`` units in a compact grid around ``centers`` [k, 2]; ``jitter`` [k, n, 2] in [-1, 1].

    Returns positions [k, n, 2]. Grid cells are ``spacing`` apart; jitter moves a unit at most a
    tenth of a cell on each axis, so with ``spacing >= 2.8 x`` the largest radius units never overlap.
    """
    cols = int(torch.ceil(torch.sqrt(torch.tensor(float(n)))).item())
    i = torch.arange(n, device=centers.device)
    gx = (i % cols).float() - (cols - 1) / 2
    rows = (n + cols - 1) // cols
    gy = (i // cols).float() - (rows - 1) / 2
    grid = torch.stack([gx, gy], dim=-1) * spacing          # [n, 2]
    return centers[:, None, :] + grid[None] + 0.1 * spacing * jitter


def agent_orders(b: Battle, actions: torch.Tensor, move_amount: float, mech: Mechanics = NONE) -> None:
    """Turn SMAC actions [B, N] into agent orders: 0/1 idle, 2-5 move N/S/E/W, 6+j attack enemy j
    (a healer's 6+j heals ally j, as SMAC's medivac)."""
    N = b.N
    b.shot_at = torch.full_like(b.shot_at, -1)
    kind = torch.full_like(actions, IDLE)
    is_move = (actions >= 2) & (actions <= 5)
    is_attack = actions >= 6
    kind = torch.where(is_move, MOVE, kind)
    kind = torch.where(is_attack, ATTACK, kind)
    # directions for actions 2..5: north (+y), south (-y), east (+x), west (-x)
    dirs = torch.tensor([[0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [-1.0, 0.0]], device=b.device)
    d = dirs[(actions - 2).clamp(0, 3)]                      # [B, N, 2]
    b.order_point[:, :N] = torch.where(is_move[..., None], b.pos[:, :N] + move_amount * d, b.order_point[:, :N])
    target = N + actions - 6
    if mech.heal:
        b.heal_at = torch.full_like(b.heal_at, -1)
        healer = b.col("heal")[:, :N] > 0
        kind = torch.where(is_attack & healer, HEAL, kind)
        target = torch.where(healer, (actions - 6).clamp(0, b.U - 1), target)
    b.order_target[:, :N] = torch.where(is_attack, target, b.order_target[:, :N])
    b.order_kind[:, :N] = torch.where(b.alive[:, :N], kind, IDLE)


def _nearest_opposed(b: Battle, dist_edge: torch.Tensor, within: torch.Tensor,
                     reach: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For each unit, the nearest living opposed unit whose edge distance is <= ``within`` [B, U]
    (and that its weapon can ``reach`` [B, U, U], when given).

    Returns (index [B, U], found [B, U]).
    """
    ok = b.opposed[None] & b.alive[:, None, :] & (dist_edge <= within[..., None])
    if reach is not None:
        ok = ok & reach
    masked = torch.where(ok, dist_edge, torch.full_like(dist_edge, float("inf")))
    best, idx = masked.min(dim=-1)
    return idx, torch.isfinite(best)


def _hit_damage(b: Battle, fire: torch.Tensor, target: torch.Tensor,
                area: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Shield and hit-point damage [B, U] taken by each unit from this tick's attacks.

    Hits land in attacker order (each multi-hit weapon's hits consecutively), so shields absorb
    first and armor applies to each hit's spill onto hit points separately, as in StarCraft II.
    ``area`` [B, U_att, U_tgt] (maps with splash or lance units only) is who an area attacker's blast
    or sweep hits; each of those targets takes the attacker's damage with its own bonus.
    """
    B, U = b.B, b.U
    attrs = b.stats[..., COL["is_light"]:COL["is_light"] + N_ATTR]          # [B, U, A]
    bonus = b.stats[..., COL["bonus_light"]:COL["bonus_light"] + N_ATTR]
    hits = b.col("hits")
    k = torch.arange(2, device=b.device, dtype=torch.float32)
    onehot = (target[..., None] == torch.arange(U, device=b.device)) & fire[..., None]  # [B, U_att, U_tgt]
    if area is None:
        t_attr = torch.gather(attrs, 1, target[..., None].expand(B, U, N_ATTR))  # [B, U_att, A] target's
        per_hit = b.col("damage") + (bonus * t_attr).sum(-1)                 # [B, U_att]
        hit_dmg = per_hit[..., None] * (k < hits[..., None]) * fire[..., None]  # [B, U_att, 2]
        m = onehot.transpose(1, 2).float()[..., None] * hit_dmg[:, None]    # [B, U_tgt, U_att, 2]
    else:
        splash = ((b.col("splash") > 0) | (b.col("lance") > 0))[..., None]
        onehot = torch.where(splash, area & fire[..., None], onehot)
        pair = b.col("damage")[..., None] + torch.einsum("bia,bja->bij", bonus, attrs)  # [B, U_att, U_tgt]
        per = (onehot.float() * pair).transpose(1, 2)                         # [B, U_tgt, U_att]
        m = per[..., None] * (k < hits[..., None]).float()[:, None]          # [B, U_tgt, U_att, 2]
    m = m.reshape(B, U, 2 * U)
    before = m.cumsum(-1) - m
    shield_left = (b.shield[..., None] - before).clamp(min=0.0)
    spill = (m - shield_left).clamp(min=0.0)
    armor = b.col("armor")[..., None]
    hp_dmg = torch.where(spill > 0, (spill - armor).clamp(min=0.5), torch.zeros_like(spill)).sum(-1)
    shield_dmg = torch.minimum(b.shield, m.sum(-1))
    return shield_dmg, hp_dmg


def tick(b: Battle, cfg: SimConfig, loops: float, arena: tuple[float, float], sub: int = 0,
         mech: Mechanics = NONE) -> None:
    """Advance all battles by ``loops`` game loops: fire, take damage, heal, move, separate, regenerate.

    ``sub`` is the tick's index within the agent step (it keys the cooldown jitter stream); ``mech``
    switches on the mechanics the environment's units need (none by default).
    """
    alive = b.alive
    diff = b.pos[:, None, :, :] - b.pos[:, :, None, :]                 # [B, U, U, 2] i -> j
    dist = diff.norm(dim=-1)                                            # [B, U, U]
    radius = b.col("radius")
    edge = dist - radius[:, :, None] - radius[:, None, :]              # edge-to-edge distance
    wrange = b.col("range")

    # Who fires at whom: an attack order on a living target in weapon range fires at it; idle units
    # and attack-moving units fire at the nearest opposed unit in weapon range (StarCraft II's
    # auto-acquire); a moving unit never fires.
    kind = b.order_kind
    tgt = b.order_target
    tgt_alive = torch.gather(alive, 1, tgt)
    attack = (kind == ATTACK) & tgt_alive
    tgt_edge = torch.gather(edge, 2, tgt[..., None]).squeeze(-1)
    in_range = tgt_edge <= wrange
    can_reach = mech_.reach(b) if mech.air else None
    if can_reach is not None:  # a weapon without anti-air follows an air target but never fires
        in_range = in_range & torch.gather(can_reach, 2, tgt[..., None]).squeeze(-1)
    near, near_found = _nearest_opposed(b, edge, wrange, can_reach)
    auto = ((kind == IDLE) | (kind == AMOVE) | ((kind == ATTACK) & ~tgt_alive)) & near_found
    shoot_at = torch.where(attack, tgt, near)
    wants_fire = alive & ((attack & in_range) | auto)
    if mech.heal:  # healers carry no weapon
        wants_fire = wants_fire & (b.col("damage") > 0)
    area = mech_.area(b, dist, radius, alive, mech.air, shoot_at if mech.lance else None) \
        if (mech.splash or mech.lance) else None
    _fire(b, cfg, loops, sub, wants_fire, shoot_at, area, mech)
    alive = b.alive
    heal_chase = mech_.heal(b, kind, tgt, edge, loops) if mech.heal else None

    chase = attack & ~in_range
    if heal_chase is not None:
        chase = chase | heal_chase
    walk = (kind == MOVE) | ((kind == AMOVE) & ~near_found)
    _move(b, cfg, loops, arena, mech, chase, walk, tgt_edge - wrange + 0.05)

    # Protoss shields regenerate after a while without damage.
    regen_after = cfg.shield_regen_delay * GAME_LOOPS_PER_SECOND
    regen = alive & (b.since_damage >= regen_after)
    gain = cfg.shield_regen_rate * loops / GAME_LOOPS_PER_SECOND
    b.shield = torch.where(regen, torch.minimum(b.shield + gain, b.col("shield")), b.shield)
    if mech.regen:  # Zerg hit points regenerate all the time, damaged or not
        grown = b.hp + b.col("hp_regen") * (loops / GAME_LOOPS_PER_SECOND)
        b.hp = torch.where(alive, torch.minimum(grown, b.col("hp")), b.hp)


def _move(b: Battle, cfg: SimConfig, loops: float, arena: tuple[float, float], mech: Mechanics,
          chase: torch.Tensor, walk: torch.Tensor, chase_len: torch.Tensor) -> None:
    """Movement: toward the order point (move, attack-move with nothing in range) or toward the
    target (``chase``: attack or heal out of range, at most ``chase_len`` [B, U] until in range), at
    most the unit's speed, never past the goal; then collisions, the arena edge and terrain."""
    alive, radius = b.alive, b.col("radius")
    tgt_pos = torch.gather(b.pos, 1, b.order_target[..., None].expand(-1, -1, 2))
    goal = torch.where(chase[..., None], tgt_pos, b.order_point)
    to_goal = goal - b.pos
    gdist = to_goal.norm(dim=-1)
    want = torch.where(chase, chase_len, gdist).clamp(min=0.0)
    step_len = torch.minimum(b.col("speed") * (loops / GAME_LOOPS_PER_SECOND), want)
    moving = alive & (chase | walk) & (gdist > 1e-6)
    if mech.paths is not None:  # round the walls: head for the next cell of the shortest path
        to_goal = mech_.waypoint(b, mech, goal) - b.pos
        gdist = to_goal.norm(dim=-1)
        step_len = torch.minimum(step_len, gdist + 0.25)
    step_vec = to_goal / gdist.clamp(min=1e-6)[..., None] * (step_len * moving)[..., None]
    pos = b.pos + step_vec

    if cfg.collisions:
        unsolid = mech.air or mech.walker
        solid, share = (mech_.separation_share(b, alive, mech.static, unsolid)
                        if (mech.static or unsolid) else (alive, None))
        for _ in range(cfg.collision_passes):
            pos = _separate(pos, radius, solid, share)
    lo = radius[..., None]
    hi = torch.tensor(arena, device=b.device) - lo
    pos = torch.maximum(torch.minimum(pos, hi), lo)
    if mech.terrain is not None:
        pos = mech_.block_terrain(b, b.pos, pos, mech)
    b.pos = torch.where(alive[..., None], pos, b.pos)


def _fire(b: Battle, cfg: SimConfig, loops: float, sub: int, wants_fire: torch.Tensor, shoot_at: torch.Tensor,
          area: torch.Tensor | None, mech: Mechanics) -> None:
    """Weapons whose cooldown is over fire; damage lands; the dead (and exploded banelings) die."""
    alive = b.alive
    cd = b.cooldown - loops
    fire = wants_fire & (cd <= 0)
    if cfg.cooldown_jitter:
        h = rng.hash_keys(b.env_seed[:, None], b.episode[:, None], b.t[:, None] * 64 + sub, b.unit_ids)
        jitter = rng.randint(h, -1, 3).float()
    else:
        jitter = 0.0
    b.cooldown = torch.where(fire, cd + b.col("cooldown_loops") + jitter, cd.clamp(min=0.0))
    shield_dmg, hp_dmg = _hit_damage(b, fire, shoot_at, area)
    b.shot_at = torch.where(fire, shoot_at, b.shot_at)
    damaged = (shield_dmg + hp_dmg) > 0
    b.shield = b.shield - shield_dmg
    b.hp = b.hp - hp_dmg
    if mech.suicide:  # a baneling's attack is its death
        b.hp = torch.where(fire & (b.col("suicide") > 0), torch.zeros_like(b.hp), b.hp)
    b.since_damage = torch.where(damaged, torch.zeros_like(b.since_damage), b.since_damage + loops)
    died = alive & (b.hp <= 0)
    b.hp = torch.where(died, torch.zeros_like(b.hp), b.hp)
    b.shield = torch.where(died, torch.zeros_like(b.shield), b.shield)
    b.alive = alive & ~died


def _separate(pos: torch.Tensor, radius: torch.Tensor, solid: torch.Tensor,
              share: torch.Tensor | None = None) -> torch.Tensor:
    """Push overlapping solid units apart (one relaxation pass). Each takes half of the overlap, or
    ``share`` [B, U, U] of it (static buildings take none, so the other unit takes it all)."""
    diff = pos[:, :, None, :] - pos[:, None, :, :]                      # [B, U, U, 2] j -> i
    dist = diff.norm(dim=-1)
    overlap = radius[:, :, None] + radius[:, None, :] - dist
    pair = solid[:, :, None] & solid[:, None, :] & (overlap > 0)
    pair = pair & ~torch.eye(pos.shape[1], dtype=torch.bool, device=pos.device)
    # coincident units get a fixed axis so they still separate deterministically
    safe = dist.clamp(min=1e-6)
    n = pos.shape[1]
    order = torch.arange(n, device=pos.device)
    sign = (order[None, :] < order[:, None]).float() * 2 - 1               # [U, U] antisymmetric
    fallback = torch.stack([sign, torch.zeros_like(sign)], dim=-1)          # [U, U, 2]
    unit = torch.where((dist > 1e-6)[..., None], diff / safe[..., None], fallback.expand_as(diff))
    if share is None:
        push = (0.5 * overlap * pair)[..., None] * unit
    else:
        push = (share * overlap * pair)[..., None] * unit
    return pos + push.sum(dim=2)
