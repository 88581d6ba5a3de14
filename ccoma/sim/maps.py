"""Map files (``maps/<name>.yaml``): arena size, named spawn sites, episode limit, default rosters.

A spawn site is a centre point and a spread: units of a team spawned there are placed in a small
formation around the centre (see :func:`ccoma.sim.engine.formation`). For the StarCraft II backend
a map may also name the ``.SC2Map`` to load.
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

    def site(self, name: str, where: str | None = None) -> SpawnSite:
        if name not in self.sites:
            raise ConfigError(where or self.path,
                              f"unknown spawn site '{name}' on map '{self.name}' (known: {', '.join(sorted(self.sites))})")
        return self.sites[name]


MAX_ARENA = 1000  # SMAC arenas are 32-64 units across; beyond this positions lose float precision
_KEYS = {"name", "size", "episode_limit", "spawn_sites", "agents", "enemies", "sc2_map", "description"}


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
    if not isinstance(raw["spawn"], str):
        raise ConfigError(where, f"field '{field}.spawn' should be a spawn-site name, got {excerpt(raw['spawn'])}")
    if raw["spawn"] not in sites:
        raise ConfigError(where, f"field '{field}.spawn': unknown spawn site '{raw['spawn']}'")
    return tuple(names), raw["spawn"]


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
    agents, agent_site = _team(raw["agents"], where, "agents", units, sites)
    enemies, enemy_site = _team(raw["enemies"], where, "enemies", units, sites)
    if agent_site == enemy_site:
        raise ConfigError(where, f"field 'enemies.spawn': both teams spawn at site '{enemy_site}'")
    if not isinstance(raw["name"], str) or not raw["name"]:
        raise ConfigError(where, f"field 'name' should be text, got {excerpt(raw['name'])}")
    return MapSpec(name=raw["name"], path=where, size=(w, h), episode_limit=limit, sites=sites,
                   agents=agents, enemies=enemies, agent_site=agent_site, enemy_site=enemy_site,
                   sc2_map=raw.get("sc2_map"))


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
