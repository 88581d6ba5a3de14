"""Map files (``maps/<name>.yaml``): arena size, named spawn sites, episode limit, default rosters.

A spawn site is a centre point and a spread: units of a team spawned there are placed in a small
formation around the centre (see :func:`ccoma.sim.engine.formation`). For the StarCraft II backend
a map may also name the ``.SC2Map`` to load.

A SMAC map carries SMAC's own facts about it in an optional ``smac:`` block (SMAC's
``map_param_registry`` entry and the unit-type order of ``get_unit_type_id``)::

    smac:
      map_type: stalkers_and_zealots   # SMAC's map_type
      unit_type_bits: 2                # SMAC's unit_type_bits
      agent_types: [stalker, zealot]   # the agents' unit-type bit order
      enemy_types: [zealot, stalker]   # the enemies' unit-type bit order

With it, a map's static episodes get SMAC's per-side layout (see ``ccoma.sim.observe``).

``terrain`` (optional) marks impassable ground: ``rows`` of ``.`` (open) and ``#`` (impassable), top
row first, laid over the whole arena (each character one cell). Ground units cannot enter ``#``
cells; cliff-walking units (colossus) and flying units ignore them. On such a map a team is
placed on the open grid points nearest its site (as StarCraft II places units created at a point).

A team's ``spawn`` is one site, or a list of one site per unit (SMAC maps that create units at
several points: 2m_vs_1z, 2s_vs_1sc, bane_vs_bane); the first is the team's site for scenarios.
``enemy_goal`` (optional) names the site the enemies attack-move to (default: the agents' start).
``unit_stats`` (optional) lays the map's own unit data over ``maps/units.yaml`` on the simulator, e.g.
``unit_stats: {hydralisk: {hp: 80}}`` (6h_vs_8z's Hydralisk_RL); on StarCraft II the map's data rules.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from ccoma.errors import ConfigError, excerpt
from ccoma.sim.units import MAPS_DIR, load_units


@dataclasses.dataclass(frozen=True)
class SpawnSite:
    """A named place where a team can start."""

    name: str
    center: tuple[float, float]
    spread: float


@dataclasses.dataclass(frozen=True)
class MapSpec:
    """A validated map: everything the engine needs about the arena."""

    name: str
    path: str
    size: tuple[float, float]
    episode_limit: int
    sites: dict[str, SpawnSite]
    agents: tuple[str, ...]
    enemies: tuple[str, ...]
    agent_site: str
    enemy_site: str
    sc2_map: str | None = None
    smac: "SmacSpec | None" = None
    terrain: tuple[str, ...] | None = None  # rows of '.'/'#', top row first
    agent_unit_sites: tuple[str, ...] | None = None  # one site per agent when the team is split
    enemy_unit_sites: tuple[str, ...] | None = None
    enemy_goal: str | None = None  # site the enemies attack-move to (None: the agents' start)
    # the map's own unit stats where they differ from maps/units.yaml: ((type, ((field, value), ...)), ...)
    unit_stats: tuple = ()

    def units(self) -> dict:
        """The unit types on this map: ``maps/units.yaml`` with the map's ``unit_stats`` laid over it."""
        units = load_units()
        if not self.unit_stats:
            return units
        return {**units, **{name: dataclasses.replace(units[name], **dict(fields)) for name, fields in self.unit_stats}}

    def terrain_grid(self, device="cpu"):
        """[H, W] bool tensor, True where ground units may stand; row 0 is y = 0 (the bottom)."""
        import torch

        rows = [[c == "." for c in row] for row in reversed(self.terrain)]
        return torch.tensor(rows, dtype=torch.bool, device=device)

    def site(self, name: str, where: str | None = None) -> SpawnSite:
        if name not in self.sites:
            raise ConfigError(where or self.path,
                              f"unknown spawn site '{name}' on map '{self.name}' (known: {', '.join(sorted(self.sites))})")
        return self.sites[name]


MAX_ARENA = 1000  # SMAC arenas are 32-64 units across; beyond this positions lose float precision
@dataclasses.dataclass(frozen=True)
class SmacSpec:
    """SMAC's facts about a map: its map_type and the per-side unit-type bit order."""

    map_type: str
    unit_type_bits: int
    agent_types: tuple[str, ...]
    enemy_types: tuple[str, ...]


# SMAC's map types (map_param_registry); get_unit_type_id orders bits per map type.
SMAC_MAP_TYPES = ("marines", "stalkers_and_zealots", "colossi_stalkers_zealots", "MMM", "zealots", "hydralisks",
                  "stalkers", "colossus", "bane")
_SMAC_KEYS = {"map_type", "unit_type_bits", "agent_types", "enemy_types"}
_KEYS = {"name", "size", "episode_limit", "spawn_sites", "agents", "enemies", "sc2_map", "description", "smac",
         "terrain", "enemy_goal", "unit_stats"}


def _unit_stats(raw, where: str, units: dict, present: tuple[str, ...]) -> tuple:
    """``unit_stats: {type: {field: value}}``: the map's custom unit data (SMAC's *_RL units), each
    entry checked as a whole unit of ``maps/units.yaml`` would be."""
    from ccoma.sim.units import _parse_unit

    if not isinstance(raw, dict) or not raw:
        raise ConfigError(where, "field 'unit_stats' should map unit names to {field: value}")
    out = []
    for name, fields in raw.items():
        if name not in present:
            raise ConfigError(where, f"field 'unit_stats': unit {excerpt(name)} is not on this map")
        if not isinstance(fields, dict) or not fields or "race" in fields:
            raise ConfigError(where, f"field 'unit_stats.{name}' should map stat names to values (race is fixed)")
        base = dataclasses.asdict(units[name])
        base.pop("name")
        base["attributes"] = list(base["attributes"])
        merged = _parse_unit(name, {**base, **fields}, where)
        out.append((name, tuple((k, getattr(merged, k)) for k in sorted(fields))))
    return tuple(out)


def _number(value, where, field, positive=True):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(where, f"field '{field}' should be a finite number, got {excerpt(value)}")
    if positive and value <= 0:
        raise ConfigError(where, f"field '{field}' must be positive, got {value}")
    return float(value)


def _team(raw, where, field, units, sites):
    if not isinstance(raw, dict):
        raise ConfigError(where, f"field '{field}' should be a mapping with 'units' and 'spawn'")
    for key in ("units", "spawn"):
        if key not in raw:
            raise ConfigError(where, f"missing field '{field}.{key}'")
    names = raw["units"]
    if not isinstance(names, list) or not names:
        raise ConfigError(where, f"field '{field}.units' should be a non-empty list of unit names")
    for i, n in enumerate(names):
        if not isinstance(n, str):
            raise ConfigError(where, f"field '{field}.units[{i}]' should be a unit name, got {excerpt(n)}")
        if n not in units:
            raise ConfigError(where, f"field '{field}.units': unknown unit '{n}' (known: {', '.join(sorted(units))})")
    spawn = raw["spawn"]
    per_unit = None
    if not isinstance(spawn, (str, list)) or (isinstance(spawn, list) and not all(isinstance(x, str) for x in spawn)):
        raise ConfigError(where, f"field '{field}.spawn' should be a spawn-site name or a list of them, "
                                 f"got {excerpt(spawn)}")
    if isinstance(spawn, list):
        if len(spawn) != len(names):
            raise ConfigError(where, f"field '{field}.spawn' lists {len(spawn)} sites for {len(names)} units")
        per_unit, spawn = tuple(str(x) for x in spawn), spawn[0]
    for site in per_unit or (spawn,):
        if site not in sites:
            raise ConfigError(where, f"field '{field}.spawn': unknown spawn site '{site}'")
    return tuple(names), spawn, per_unit


def _terrain(raw, where, sites) -> tuple[str, ...]:
    """Validate a ``terrain`` block; spawn sites must stand on open ground."""
    if not isinstance(raw, dict) or set(raw) != {"rows"}:
        raise ConfigError(where, "field 'terrain' should be a mapping with only 'rows' (strings of '.' and '#')")
    rows = raw["rows"]
    if (not isinstance(rows, list) or not rows or not all(isinstance(r, str) for r in rows)
            or len({len(r) for r in rows}) != 1 or not rows[0]):
        raise ConfigError(where, "field 'terrain.rows' should be a non-empty list of equally long strings")
    bad = sorted(set("".join(rows)) - {".", "#"})
    if bad:
        raise ConfigError(where, f"field 'terrain.rows': unknown cell '{bad[0]}' (use '.' open, '#' impassable)")
    return tuple(rows)


def _check_sites_open(spec: MapSpec, where: str) -> None:
    H, W = len(spec.terrain), len(spec.terrain[0])
    for s in spec.sites.values():
        x, y = s.center
        col, row = min(int(x * W / spec.size[0]), W - 1), min(int(y * H / spec.size[1]), H - 1)
        if spec.terrain[H - 1 - row][col] != ".":
            raise ConfigError(where, f"field 'spawn_sites.{s.name}.center': ({x:g}, {y:g}) is on impassable terrain")


def _smac_block(raw, where: str, agents: tuple[str, ...], enemies: tuple[str, ...]) -> SmacSpec:
    if not isinstance(raw, dict):
        raise ConfigError(where, "field 'smac' should be a mapping with map_type, unit_type_bits, agent_types, "
                                 "enemy_types")
    extra = sorted(set(raw) - _SMAC_KEYS)
    if extra:
        raise ConfigError(where, f"field 'smac': unknown key '{extra[0]}' (known: {', '.join(sorted(_SMAC_KEYS))})")
    for key in ("map_type", "unit_type_bits"):
        if key not in raw:
            raise ConfigError(where, f"missing field 'smac.{key}'")
    if not isinstance(raw["map_type"], str) or raw["map_type"] not in SMAC_MAP_TYPES:
        raise ConfigError(where, f"field 'smac.map_type': unknown SMAC map type {excerpt(raw['map_type'])} "
                                 f"(known: {', '.join(SMAC_MAP_TYPES)})")
    bits = raw["unit_type_bits"]
    if isinstance(bits, bool) or not isinstance(bits, int) or bits < 0:
        raise ConfigError(where, f"field 'smac.unit_type_bits' must be a non-negative integer, got {bits!r}")
    orders = {}
    for key, team in (("agent_types", agents), ("enemy_types", enemies)):
        names = raw.get(key, sorted(set(team)) if bits == 0 else None)
        if names is None:
            raise ConfigError(where, f"missing field 'smac.{key}' (required when unit_type_bits > 0)")
        if (not isinstance(names, list) or not all(isinstance(n, str) for n in names)
                or len(set(names)) != len(names)):
            raise ConfigError(where, f"field 'smac.{key}' should be a list of distinct unit names, got {excerpt(names)}")
        missing = sorted(set(team) - set(names))
        if missing:
            raise ConfigError(where, f"field 'smac.{key}' does not list unit '{missing[0]}' of its team")
        if bits and len(names) != bits:
            raise ConfigError(where, f"field 'smac.{key}' lists {len(names)} types but unit_type_bits is {bits}")
        orders[key] = tuple(str(n) for n in names)
    return SmacSpec(map_type=raw["map_type"], unit_type_bits=bits, **orders)


def parse_map(raw, where: str) -> MapSpec:
    """Validate a map mapping (as read from YAML)."""
    if not isinstance(raw, dict):
        raise ConfigError(where, "a map file should be a mapping")
    extra = sorted(set(raw) - _KEYS)
    if extra:
        raise ConfigError(where, f"unknown field '{extra[0]}'")
    for key in ("name", "size", "episode_limit", "spawn_sites", "agents", "enemies"):
        if key not in raw:
            raise ConfigError(where, f"missing field '{key}'")
    size = raw["size"]
    if not isinstance(size, list) or len(size) != 2:
        raise ConfigError(where, "field 'size' should be [width, height]")
    w, h = (_number(v, where, "size") for v in size)
    if max(w, h) > MAX_ARENA:
        raise ConfigError(where, f"field 'size': an arena of {w:g}x{h:g} is larger than {MAX_ARENA}x{MAX_ARENA}")
    limit = raw["episode_limit"]
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise ConfigError(where, f"field 'episode_limit' must be a positive integer, got {excerpt(limit)}")
    if not isinstance(raw["spawn_sites"], dict) or not raw["spawn_sites"]:
        raise ConfigError(where, "field 'spawn_sites' should map site names to {center: [x, y], spread: r}")
    sites = {}
    for name, s in raw["spawn_sites"].items():
        f = f"spawn_sites.{name}"
        if not isinstance(s, dict) or "center" not in s:
            raise ConfigError(where, f"field '{f}' needs 'center: [x, y]'")
        extra = sorted(set(s) - {"center", "spread"})
        if extra:
            raise ConfigError(where, f"field '{f}': unknown key '{extra[0]}'")
        c = s["center"]
        if not isinstance(c, list) or len(c) != 2:
            raise ConfigError(where, f"field '{f}.center' should be [x, y]")
        x, y = (_number(v, where, f + ".center", positive=False) for v in c)
        spread = _number(s.get("spread", 1.5), where, f + ".spread", positive=False)
        if not (0 <= x <= w and 0 <= y <= h):
            raise ConfigError(where, f"field '{f}.center': spawn site ({x}, {y}) is outside the {w:g}x{h:g} arena")
        if spread < 0 or x - spread < 0 or x + spread > w or y - spread < 0 or y + spread > h:
            raise ConfigError(where, f"field '{f}.spread': formation of radius {spread} leaves the arena")
        sites[str(name)] = SpawnSite(str(name), (x, y), spread)
    units = load_units()
    agents, agent_site, agent_unit_sites = _team(raw["agents"], where, "agents", units, sites)
    enemies, enemy_site, enemy_unit_sites = _team(raw["enemies"], where, "enemies", units, sites)
    if agent_site == enemy_site and not (agent_unit_sites or enemy_unit_sites):
        raise ConfigError(where, f"field 'enemies.spawn': both teams spawn at site '{enemy_site}'")
    if not isinstance(raw["name"], str) or not raw["name"]:
        raise ConfigError(where, f"field 'name' should be text, got {excerpt(raw['name'])}")
    smac = _smac_block(raw["smac"], where, agents, enemies) if "smac" in raw else None
    goal = raw.get("enemy_goal")
    if goal is not None and goal not in sites:
        raise ConfigError(where, f"field 'enemy_goal': unknown spawn site '{goal}'")
    terrain = _terrain(raw["terrain"], where, sites) if "terrain" in raw else None
    stats = _unit_stats(raw["unit_stats"], where, units, agents + enemies) if "unit_stats" in raw else ()
    spec = MapSpec(name=str(raw["name"]), path=where, size=(w, h), episode_limit=limit, sites=sites,
                   agents=agents, enemies=enemies, agent_site=agent_site, enemy_site=enemy_site,
                   sc2_map=raw.get("sc2_map"), terrain=terrain, agent_unit_sites=agent_unit_sites,
                   enemy_unit_sites=enemy_unit_sites, enemy_goal=goal, smac=smac, unit_stats=stats)
    if terrain is not None:
        _check_sites_open(spec, where)
    return spec


def start_grid(spec: MapSpec, team: str, radius: dict[str, float]) -> tuple[list, list]:
    """Jitter-free start points of a team (``"agents"``/``"enemies"``), one per unit, in roster order,
    and each unit's grid spacing (3x the largest ``radius`` of the unit types at its site).

    Units sharing a site form a compact grid around it (rows of ceil(sqrt(n))); on a map with
    terrain they take the open grid points nearest the site instead, clear of impassable cells by
    their radius plus the formation jitter (a tenth of the spacing).
    """
    names = spec.agents if team == "agents" else spec.enemies
    per_unit = (spec.agent_unit_sites if team == "agents" else spec.enemy_unit_sites) or \
        ((spec.agent_site if team == "agents" else spec.enemy_site),) * len(names)
    out: list = [None] * len(names)
    gaps: list = [None] * len(names)
    for site in dict.fromkeys(per_unit):
        members = [i for i, s in enumerate(per_unit) if s == site]
        r = max(radius[names[i]] for i in members)
        points = _site_points(spec, spec.sites[site].center, len(members), 3.0 * r, 1.3 * r)
        for i, p in zip(members, points):
            out[i], gaps[i] = p, 3.0 * r
    return out, gaps


def _site_points(spec: MapSpec, center, n: int, spacing: float, margin: float) -> list[tuple[float, float]]:
    cx, cy = center
    if spec.terrain is None:  # the grid of engine.formation, row by row
        cols = math.ceil(math.sqrt(n))
        rows = (n + cols - 1) // cols
        return [(cx + ((i % cols) - (cols - 1) / 2) * spacing, cy + ((i // cols) - (rows - 1) / 2) * spacing)
                for i in range(n)]
    H, W = len(spec.terrain), len(spec.terrain[0])

    def open_at(x, y):
        if not (0 <= x < spec.size[0] and 0 <= y < spec.size[1]):
            return False
        return spec.terrain[H - 1 - int(y * H / spec.size[1])][int(x * W / spec.size[0])] == "."

    reach = int(max(spec.size) / spacing) + 1
    cands = [(cx + i * spacing, cy + j * spacing) for i in range(-reach, reach + 1) for j in range(-reach, reach + 1)]
    ok = [(x, y) for x, y in cands
          if all(open_at(x + dx, y + dy) for dx in (-margin, 0, margin) for dy in (-margin, 0, margin))]
    ok.sort(key=lambda p: ((p[0] - cx) ** 2 + (p[1] - cy) ** 2, p[1], p[0]))
    if len(ok) < n:
        raise ConfigError(spec.path, f"no room for {n} units on open ground around ({cx:g}, {cy:g})")
    return ok[:n]


def map_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        return p
    return MAPS_DIR / f"{name_or_path}.yaml"


def load_map(name_or_path: str | Path) -> MapSpec:
    """Load ``maps/<name>.yaml`` (or a path); unknown map names list the shipped ones."""
    from ccoma.config import load_yaml

    path = map_path(name_or_path)
    if not path.exists():
        known = sorted(p.stem for p in MAPS_DIR.glob("*.yaml") if p.stem != "units")
        raise ConfigError(str(path), f"no such map (shipped maps: {', '.join(known)})")
    return parse_map(load_yaml(path), str(path))
