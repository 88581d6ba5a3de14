"""The vectorised part of the scenario scheduler: counter-based random numbers, team draws and formations.

Every random number an episode needs is a hash of (source seed, episode index, draw slot), so an
episode's spec is a pure function of (scenario, step, seed, episode index): it does not depend on
how many environments reset together, nor on the simulator's own random numbers (which depend on
how the battles went, and so on the method under test). All work is torch ops over the ``k``
episodes being sampled; Python loops run only over phases, start modes and the 4 diagonals.
"""
from __future__ import annotations

import dataclasses
import math
import zlib

import torch

_M32 = 0xFFFFFFFF
# SMACv2's diagonal order: (-,-), (-,+), (+,+), (+,-) from the map centre.
_DIAGONALS = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [1.0, -1.0]], dtype=torch.float64) / math.sqrt(2)


# ---------------------------------------------------------------- counter-based uniforms
def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for x in [0, 2**32) without overflowing int64."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _M32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer finaliser (xor-shift-multiply, 'lowbias32' constants)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def stream_key(seed: int, label: str) -> int:
    """A 32-bit key for one random stream (a seed and a stage or phase label)."""
    return zlib.crc32(f"{int(seed)}|{label}".encode())


def episode_uniforms(key: int, episodes: torch.Tensor, n: int) -> torch.Tensor:
    """Uniforms in (0, 1) for each episode index: ``[k] int64 -> [k, n] float64``."""
    ep = episodes.to(torch.int64)
    h = _mix32((_mix32(ep & _M32) + key) & _M32)
    h = _mix32(h ^ _mix32((ep >> 32) & _M32))
    slots = _mix32(torch.arange(n, dtype=torch.int64) * 0x9E3779B1 & _M32)
    u = _mix32(_mix32(h[:, None] ^ slots[None, :]) + h[:, None] & _M32)
    return (u.to(torch.float64) + 0.5) / 2.0 ** 32


def categorical(cdf: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index drawn from a cumulative distribution ``cdf [C]`` by uniforms ``u [k]`` -> ``[k]``."""
    return torch.searchsorted(cdf, u.contiguous(), right=True).clamp_(max=cdf.numel() - 1)


class Draws:
    """Named slices of one episode batch's uniforms; the layout is fixed, so draws never shift."""

    def __init__(self, widths: dict[str, int]):
        self.offsets, total = {}, 0
        for name, width in widths.items():
            self.offsets[name] = (total, total + width)
            total += width
        self.total = total

    def bind(self, u: torch.Tensor) -> "BoundDraws":
        return BoundDraws(self, u)


@dataclasses.dataclass
class BoundDraws:
    layout: Draws
    u: torch.Tensor  # [k, total] float64

    def __getitem__(self, name: str) -> torch.Tensor:
        a, b = self.layout.offsets[name]
        return self.u[:, a:b]

    def subset(self, mask: torch.Tensor) -> "BoundDraws":
        return BoundDraws(self.layout, self.u[mask])


def draw_layout(n_agents: int, n_enemies: int) -> Draws:
    return Draws({"phase": 1, "agent_comp": 1, "enemy_comp": 1, "mode": 1, "site": 1, "n_groups": 1,
                  "diag": 4, "dist": 4, "agent_shift": 2, "agent_rot": 1, "enemy_shift": 2, "enemy_rot": 1,
                  "agent_perm": n_agents, "enemy_perm": n_enemies, "member": n_enemies,
                  "agent_jit": 2 * n_agents, "enemy_jit": 2 * n_enemies})


# ---------------------------------------------------------------- teams
@dataclasses.dataclass
class TeamTable:
    """One phase's team generator as tensors (type indices into the scenario's vocabulary)."""

    fixed: torch.Tensor   # [f] int64
    comps: torch.Tensor   # [C, m] int64, drawn part of each allowed team
    cdf: torch.Tensor     # [C] float64
    gid: torch.Tensor     # [C] int64, scenario-wide id of the whole team (for seen/unseen)


def sample_team(table: TeamTable, u_comp: torch.Tensor, u_perm: torch.Tensor):
    """Types ``[k, n]`` (fixed units first, the drawn ones shuffled) and team ids ``[k]``."""
    c = categorical(table.cdf, u_comp[:, 0])
    drawn = table.comps[c]                                      # [k, m]
    m = drawn.shape[1]
    if m > 1:
        order = torch.argsort(u_perm[:, :m], dim=1)
        drawn = torch.gather(drawn, 1, order)
    types = torch.cat([table.fixed.expand(len(c), -1), drawn], dim=1)
    return types, table.gid[c]


# ---------------------------------------------------------------- formations
def hex_slots(n: int) -> torch.Tensor:
    """``[n, 2]`` points of a unit-spaced hexagonal lattice, nearest the origin first (compact)."""
    r = int(math.ceil(math.sqrt(n))) + 1
    pts = [(q + s / 2.0, s * math.sqrt(3) / 2.0) for q in range(-r, r + 1) for s in range(-r, r + 1)]
    pts.sort(key=lambda p: (round(math.hypot(*p), 6), round(math.atan2(p[1], p[0]), 6)))
    return torch.tensor(pts[:n], dtype=torch.float64)


@dataclasses.dataclass
class Geometry:
    """Formation layout: slot spacing keeps units of radius <= ``r_max`` apart even after jitter."""

    size: tuple[float, float]
    r_max: float
    jitter: float
    rotate: bool
    n_slots: int

    def __post_init__(self):
        self.spacing = 2 * self.r_max + 2 * self.jitter + 0.05
        self.slots = hex_slots(self.n_slots) * self.spacing          # [n_slots, 2]

    def radius(self, n: int) -> float:
        """Distance of the farthest slot centre of an ``n``-unit formation."""
        return float(self.slots[n - 1].norm()) if n > 0 else 0.0

    def extent(self, n: int, spread: float = 0.0) -> float:
        """How far any unit's edge can reach from the site centre (formation shifted within spread)."""
        return max(spread, self.radius(n)) + self.jitter + self.r_max

    def place(self, centre, slot, u_rot, u_jit):
        """Unit positions around per-unit centres ``[k, n, 2]`` at lattice slots ``[k, n]``.

        ``u_rot [k, 1]`` rotates each episode's formation, ``u_jit [k, 2n]`` jitters each unit
        inside a disc of radius ``jitter``."""
        k, n = slot.shape
        offs = self.slots[slot]                                      # [k, n, 2]
        if self.rotate:
            a = 2 * math.pi * u_rot                                  # [k, 1]
            cos, sin = torch.cos(a)[:, :, None], torch.sin(a)[:, :, None]
            offs = torch.cat([offs[..., :1] * cos - offs[..., 1:] * sin,
                              offs[..., :1] * sin + offs[..., 1:] * cos], dim=-1)
        uj = u_jit.reshape(k, n, 2)
        rad = self.jitter * torch.sqrt(uj[..., 0])
        ang = 2 * math.pi * uj[..., 1]
        jit = torch.stack([rad * torch.cos(ang), rad * torch.sin(ang)], dim=-1)
        return centre + offs + jit


def disc(radius: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Uniform points in discs of radius ``[k]`` from uniforms ``[k, 2]`` -> ``[k, 2]``."""
    r = radius * torch.sqrt(u[:, 0])
    a = 2 * math.pi * u[:, 1]
    return torch.stack([r * torch.cos(a), r * torch.sin(a)], dim=-1)


@dataclasses.dataclass
class StartTable:
    """One phase's start positions as tensors. ``p_reflect``: probability of reflect (0 for sites)."""

    kind: str                       # sites | reflect | surrounded | surrounded_and_reflect
    p_reflect: float
    site_xy: torch.Tensor           # [S, 2] enemy site centres
    site_spread: torch.Tensor       # [S]
    site_cdf: torch.Tensor          # [S]
    site_gid: torch.Tensor          # [S] start-situation ids
    agent_xy: torch.Tensor          # [2]
    agent_spread: float
    groups: tuple[int, int]
    reflect_gid: int
    surrounded_gid: int


def _sites(st: StartTable, geo: Geometry, d: BoundDraws, n_a: int, n_e: int):
    k = d.u.shape[0]
    s = categorical(st.site_cdf, d["site"][:, 0])
    shift_e = (st.site_spread[s] - geo.radius(n_e)).clamp(min=0)
    c_e = st.site_xy[s] + disc(shift_e, d["enemy_shift"])
    shift_a = torch.full((k,), max(st.agent_spread - geo.radius(n_a), 0.0), dtype=torch.float64)
    c_a = st.agent_xy.expand(k, 2) + disc(shift_a, d["agent_shift"])
    return c_a, c_e, None, st.site_gid[s]


def _reflect(st: StartTable, geo: Geometry, d: BoundDraws, n_a: int, n_e: int):
    """SMACv2 'reflect' at team level: agents' centre uniform in the west half, enemies' mirrored."""
    (w, _), (x0, x1), (y0, y1) = geo.size, *reflect_box(geo, n_a, n_e)
    u = d["agent_shift"]
    c_a = torch.stack([x0 + (x1 - x0) * u[:, 0], y0 + (y1 - y0) * u[:, 1]], dim=-1)
    c_e = torch.stack([w - c_a[:, 0], c_a[:, 1]], dim=-1)
    return c_a, c_e, None, torch.full((len(u),), st.reflect_gid, dtype=torch.int64)


def reflect_box(geo: Geometry, n_a: int, n_e: int):
    """Ranges of the agents' centre for reflect: both teams inside, mirrored teams apart."""
    ea, ee = geo.extent(n_a), geo.extent(n_e)
    w, h = geo.size
    m = max(ea, ee)
    return (m, (w - ea - ee) / 2.0), (m, h - m)


def surround_range(geo: Geometry, n_a: int, n_e: int, spread: float):
    """Distance range of an enemy group's centre from the map centre along its diagonal."""
    ea = geo.extent(n_a, spread)
    ee = geo.extent(n_e)
    lo = max(ea + ee, math.sqrt(2) * ee) + 0.05
    hi = (min(geo.size) / 2.0 - ee) * math.sqrt(2)
    return lo, hi


def _surrounded(st: StartTable, geo: Geometry, d: BoundDraws, n_a: int, n_e: int):
    """SMACv2 'surrounded': agents at the centre; enemies in 1-4 groups on distinct diagonals."""
    k = d.u.shape[0]
    centre = torch.tensor(geo.size, dtype=torch.float64) / 2
    shift = torch.full((k,), max(st.agent_spread - geo.radius(n_a), 0.0), dtype=torch.float64)
    c_a = centre.expand(k, 2) + disc(shift, d["agent_shift"])
    lo, hi = st.groups
    n_groups = lo + (d["n_groups"][:, 0] * (hi - lo + 1)).long()             # [k]
    group = (d["member"] * n_groups[:, None]).long()                          # [k, E] in [0, n_groups)
    diag = torch.argsort(d["diag"], dim=1)                                    # [k, 4] distinct diagonals
    dmin, dmax = surround_range(geo, n_a, n_e, st.agent_spread)
    dist = dmin + (dmax - dmin) * d["dist"]                                   # [k, 4] per group
    g_diag = torch.gather(diag, 1, group)                                     # [k, E]
    g_dist = torch.gather(dist, 1, group)
    c_e = centre + _DIAGONALS[g_diag] * g_dist[..., None]                     # [k, E, 2]
    onehot = torch.nn.functional.one_hot(group, 4)
    rank = torch.gather(onehot.cumsum(1) - 1, 2, group[..., None])[..., 0]   # slot within its group
    return c_a, c_e, rank, torch.full((k,), st.surrounded_gid, dtype=torch.int64)


def place_teams(st: StartTable, geo: Geometry, d: BoundDraws, n_a: int, n_e: int, place: bool = True):
    """Start positions ``[k, N, 2]``, ``[k, E, 2]`` (float64) and start-situation ids ``[k]``.

    ``place=False`` works out only the ids (positions None): a scenario whose teams start in the map's
    own formation (``formation: {layout: map}``) places them elsewhere, from the same draws."""
    k = d.u.shape[0]
    if st.kind == "sites":
        mode = torch.zeros(k, dtype=torch.int64)
    elif st.kind == "reflect":
        mode = torch.ones(k, dtype=torch.int64)
    elif st.kind == "surrounded":
        mode = torch.full((k,), 2, dtype=torch.int64)
    else:
        mode = torch.where(d["mode"][:, 0] < st.p_reflect, 1, 2)
    ally = torch.empty(k, n_a, 2, dtype=torch.float64) if place else None
    enemy = torch.empty(k, n_e, 2, dtype=torch.float64) if place else None
    gid = torch.empty(k, dtype=torch.int64)
    for m, fn in enumerate((_sites, _reflect, _surrounded)):
        sel = mode == m
        if not bool(sel.any()):
            continue
        ds = d.subset(sel)
        c_a, c_e, e_slot, g = fn(st, geo, ds, n_a, n_e)
        gid[sel] = g
        if not place:
            continue
        kk = c_a.shape[0]
        a_slot = torch.arange(n_a).expand(kk, n_a)
        if e_slot is None:
            e_slot = torch.arange(n_e).expand(kk, n_e)
            c_e = c_e[:, None, :].expand(kk, n_e, 2)
        ally[sel] = geo.place(c_a[:, None, :].expand(kk, n_a, 2), a_slot, ds["agent_rot"], ds["agent_jit"])
        enemy[sel] = geo.place(c_e, e_slot, ds["enemy_rot"], ds["enemy_jit"])
    return ally, enemy, gid


# ---------------------------------------------------------------- compiling a scenario's phases
@dataclasses.dataclass
class PhaseTables:
    agents: TeamTable
    enemies: TeamTable
    start: StartTable
    situations: frozenset   # every (agent team, enemy team, start) id this phase can produce


def _team_table(team, vocab, ids) -> TeamTable:
    comps = [tuple(c) for c in team.compositions]
    for c in comps:
        ids.setdefault(tuple(sorted(team.fixed + c)), len(ids))
    cdf = torch.cumsum(torch.tensor(team.probs, dtype=torch.float64), 0)
    return TeamTable(fixed=torch.tensor([vocab[u] for u in team.fixed], dtype=torch.int64),
                     comps=torch.tensor([[vocab[u] for u in c] for c in comps], dtype=torch.int64).reshape(len(comps), -1),
                     cdf=cdf / cdf[-1],
                     gid=torch.tensor([ids[tuple(sorted(team.fixed + c))] for c in comps], dtype=torch.int64))


def _start_table(st, map_spec, keys) -> StartTable:
    for key in st.keys():
        keys.setdefault(key, len(keys))
    agent = map_spec.sites[st.agent_site] if st.dist_type == "sites" else None
    sites = [map_spec.sites[s] for s in st.sites]
    cdf = torch.cumsum(torch.tensor(st.weights or (1.0,), dtype=torch.float64), 0)
    return StartTable(
        kind=st.dist_type,
        p_reflect={"reflect": 1.0, "surrounded_and_reflect": st.p}.get(st.dist_type, 0.0),
        site_xy=torch.tensor([s.center for s in sites] or [[0.0, 0.0]], dtype=torch.float64),
        site_spread=torch.tensor([s.spread for s in sites] or [0.0], dtype=torch.float64),
        site_cdf=cdf / cdf[-1],
        site_gid=torch.tensor([keys.get(f"{st.agent_site}->{s}", -1) for s in st.sites] or [-1], dtype=torch.int64),
        agent_xy=torch.tensor(agent.center if agent else (0.0, 0.0), dtype=torch.float64),
        agent_spread=agent.spread if agent else st.spread,
        groups=st.groups, reflect_gid=keys.get("reflect", -1), surrounded_gid=keys.get("surrounded", -1))


@dataclasses.dataclass(frozen=True)
class CompiledPhases:
    """A scenario's phases as tensor tables, and which situations training can produce.

    A *situation* is one (agent team, enemy team, start) triple, numbered
    ``(agent_team * n_enemy_teams + enemy_team) * n_starts + start`` (see ``situation_dims``)."""

    tables: tuple[PhaseTables, ...]          # one per phase, in ``phase_names`` order
    team_ids: tuple[dict, dict]              # sorted unit tuple -> team id, for agents and for enemies
    start_keys: tuple[str, ...]              # start situation labels, by start id
    situation_dims: tuple[int, int]          # (enemy teams, start situations)
    train_support: torch.Tensor              # [K] int64 sorted: situation ids a training phase produces
    phase_unseen: dict[str, bool]            # phase name -> produces a situation training never does


def compile_phases(spec, map_spec, unit_types, phase_names, train_phases) -> CompiledPhases:
    """Tensor tables, situation ids and the training support of a scenario's phases (``spec``: a
    ScenarioSpec); it depends on neither the stage lengths nor the seed, so rescaling reuses it."""
    vocab = {u: i for i, u in enumerate(unit_types)}
    a_ids, e_ids, keys = {}, {}, {}
    raw = []
    for name in phase_names:
        ph = spec.phases[name]
        raw.append((_team_table(ph.agents, vocab, a_ids), _team_table(ph.enemies, vocab, e_ids),
                    _start_table(ph.start, map_spec, keys), ph))
    n_e, n_s = len(e_ids), len(keys)
    tables = []
    for a, e, st, ph in raw:
        s_ids = [keys[k] for k in ph.start.keys()]
        sits = frozenset((x * n_e + y) * n_s + z for x in a.gid.tolist() for y in e.gid.tolist() for z in s_ids)
        tables.append(PhaseTables(a, e, st, sits))
    support = set().union(*(tables[phase_names.index(n)].situations for n in train_phases))
    return CompiledPhases(tables=tuple(tables), team_ids=(a_ids, e_ids), start_keys=tuple(keys),
                          situation_dims=(n_e, n_s),
                          train_support=torch.tensor(sorted(support), dtype=torch.int64),
                          phase_unseen={n: not t.situations <= support for n, t in zip(phase_names, tables)})


# ---------------------------------------------------------------- checks that need geometry
def _fits(centre, extent, size) -> bool:
    return all(extent <= c <= s - extent for c, s in zip(centre, size))


def check_geometry(scn) -> None:
    """Every formation fits inside the arena and the two teams never start overlapping."""
    from ccoma.errors import ConfigError

    geo, n_a, n_e, where = scn.geometry, scn.n_agents, scn.n_enemies, scn.path
    for name in scn.phase_names:
        st = scn.spec.phases[name].start
        if st.dist_type == "sites":
            a = scn.map.sites[st.agent_site]
            ea = geo.extent(n_a, a.spread)
            if not _fits(a.center, ea, geo.size):
                raise ConfigError(where, f"phase '{name}': {n_a} agents at site '{a.name}' do not fit inside the arena")
            for s in (scn.map.sites[x] for x in st.sites):
                ee = geo.extent(n_e, s.spread)
                if not _fits(s.center, ee, geo.size):
                    raise ConfigError(where, f"phase '{name}': {n_e} enemies at site '{s.name}' do not fit inside "
                                             f"the arena")
                if math.dist(a.center, s.center) < ea + ee:
                    raise ConfigError(where, f"phase '{name}': sites '{a.name}' and '{s.name}' are too close; the "
                                             f"teams' formations would overlap")
            continue
        if st.dist_type in ("reflect", "surrounded_and_reflect"):
            (x0, x1), (y0, y1) = reflect_box(geo, n_a, n_e)
            if x0 > x1 or y0 > y1:
                raise ConfigError(where, f"phase '{name}': the map is too small for 'reflect' with these teams")
        if st.dist_type in ("surrounded", "surrounded_and_reflect"):
            lo, hi = surround_range(geo, n_a, n_e, st.spread)
            if lo > hi:
                raise ConfigError(where, f"phase '{name}': the map is too small for 'surrounded' with these teams "
                                         f"(enemy groups need {lo:.1f} map units from the centre, at most {hi:.1f} fit)")


def check_unseen(scn) -> None:
    """``protocol.unseen_from`` must match the schedule: nothing unseen before it, something after."""
    from ccoma.errors import ConfigError

    u, where = scn.unseen_from, scn.path
    for seg in scn.segments("deploy"):
        live = [n for n, a, b in zip(scn.phase_names, seg.w_start, seg.w_end) if a > 0 or b > 0]
        for n in live:
            if scn.compiled.phase_unseen[n] and (u is None or seg.start < u):
                when = "but protocol.unseen_from is not set" if u is None else f"before unseen_from={u}"
                raise ConfigError(where, f"deploy phase '{n}' (steps {seg.start}-{seg.end}) produces situations "
                                         f"no training phase produces, {when}")
    if u is not None and not any(scn.compiled.phase_unseen[n] for n in scn.deploy_phases):
        raise ConfigError(where, f"protocol.unseen_from={u} but no deploy phase produces unseen situations")
