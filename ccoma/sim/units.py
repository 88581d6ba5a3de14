"""Unit stats as data: loaded from ``maps/units.yaml``, validated, and packed into tensors.

The engine never reads a stat by name in its hot path: :class:`UnitTable` turns the types a map
or scenario can produce into one ``[n_types, N_STATS]`` tensor that is gathered per unit at reset.
"""
from __future__ import annotations

import dataclasses
import math
from functools import lru_cache
from pathlib import Path

from ccoma.errors import ConfigError, excerpt

MAPS_DIR = Path(__file__).resolve().parents[2] / "maps"
DEFAULT_UNITS_FILE = MAPS_DIR / "units.yaml"

ATTRIBUTES = ("light", "armored", "biological", "mechanical", "massive")
RACES = ("protoss", "terran", "zerg")
_NUMERIC = ("hp", "shield", "armor", "damage", "hits", "cooldown", "range", "speed", "radius", "sight",
            "cooldown_norm")
_NONNEG = {"shield", "armor", "damage", "speed"}
# Optional per-type fields: mechanics most units lack (default 0 / false). A unit with damage 0 has
# no weapon (medivac); speed 0 is a static building (spine crawler).
_OPTIONAL_NUM = {"heal": 0.0, "heal_cost": 0.0, "energy_start": 0.0, "energy_max": 0.0, "energy_regen": 0.0,
                 "splash": 0.0, "hp_regen": 0.0, "lance": 0.0}
_OPTIONAL_FLAG = ("suicide", "air", "anti_air", "cliffwalk")


@dataclasses.dataclass(frozen=True)
class UnitType:
    """One StarCraft II unit type at Faster speed."""

    name: str
    race: str
    hp: float
    shield: float
    armor: float
    damage: float
    hits: int
    bonus: dict
    cooldown: float
    range: float
    speed: float
    radius: float
    sight: float
    attributes: tuple
    cooldown_norm: float
    heal: float = 0.0           # hit points healed per second (medivac), 0 for others
    heal_cost: float = 0.0      # energy spent per hit point healed
    energy_start: float = 0.0
    energy_max: float = 0.0
    energy_regen: float = 0.0   # energy per second
    splash: float = 0.0         # radius of the area an attack hits, around the attacker (baneling)
    suicide: bool = False       # the unit dies when it attacks (baneling)
    air: bool = False           # flying: no ground collisions, only anti-air weapons reach it
    anti_air: bool = False      # the weapon can hit air units
    cliffwalk: bool = False     # ignores impassable terrain (colossus)
    hp_regen: float = 0.0       # hit points regenerated per second, always (Zerg regeneration)
    lance: float = 0.0          # half-length of a line swept across the target (colossus' Thermal Lances)


def _parse_unit(name: str, raw: object, where: str) -> UnitType:
    if not isinstance(raw, dict):
        raise ConfigError(where, f"unit '{name}' should be a mapping of stats")
    known = set(_NUMERIC) | {"race", "bonus", "attributes"} | set(_OPTIONAL_NUM) | set(_OPTIONAL_FLAG)
    extra = sorted(set(raw) - known)
    if extra:
        raise ConfigError(where, f"unit '{name}': unknown field '{extra[0]}'")
    for key in _NUMERIC + ("race", "bonus", "attributes"):
        if key not in raw:
            raise ConfigError(where, f"unit '{name}': missing field '{key}'")
    vals = {}
    for key in _NUMERIC:
        v = raw[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(where, f"unit '{name}': field '{key}' should be a finite number, got {excerpt(v)}")
        if v < 0 or (v == 0 and key not in _NONNEG):
            raise ConfigError(where, f"unit '{name}': field '{key}' must be positive, got {v}")
        vals[key] = float(v)
    for key, default in _OPTIONAL_NUM.items():
        v = raw.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ConfigError(where, f"unit '{name}': field '{key}' should be a non-negative number, got {v!r}")
        vals[key] = float(v)
    for key in _OPTIONAL_FLAG:
        v = raw.get(key, False)
        if not isinstance(v, bool):
            raise ConfigError(where, f"unit '{name}': field '{key}' should be true or false, got {v!r}")
        vals[key] = v
    if vals["heal"] > 0 and vals["energy_max"] <= 0:
        raise ConfigError(where, f"unit '{name}': a healer needs 'energy_max' (its heal spends energy)")
    if raw["race"] not in RACES:
        raise ConfigError(where, f"unit '{name}': field 'race' must be one of {RACES}, got {excerpt(raw['race'])}")
    attrs = raw["attributes"]
    if not isinstance(attrs, list) or any(a not in ATTRIBUTES for a in attrs):
        raise ConfigError(where, f"unit '{name}': field 'attributes' must list items of {ATTRIBUTES}")
    bonus = raw["bonus"] or {}
    if not isinstance(bonus, dict) or any(k not in ATTRIBUTES or isinstance(v, bool) or not isinstance(v, (int, float))
                                          or not math.isfinite(v)
                                          for k, v in bonus.items()):
        raise ConfigError(where, f"unit '{name}': field 'bonus' must map attributes {ATTRIBUTES} to numbers")
    if int(vals["hits"]) != vals["hits"]:
        raise ConfigError(where, f"unit '{name}': field 'hits' must be a whole number")
    vals["hits"] = int(vals["hits"])
    return UnitType(name=name, race=raw["race"], bonus=dict(bonus), attributes=tuple(attrs), **vals)


@lru_cache(maxsize=8)
def load_units(path: str | Path = DEFAULT_UNITS_FILE) -> dict[str, UnitType]:
    """Load and validate the unit stats table: ``{name: UnitType}``."""
    from ccoma.config import load_yaml

    where = str(path)
    raw = load_yaml(path)
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(where, "should map unit names to their stats")
    return {str(name): _parse_unit(str(name), stats, where) for name, stats in raw.items()}


def get_unit(name: str, where: str = "unit", units: dict[str, UnitType] | None = None) -> UnitType:
    """Look up a unit type; unknown names are a ConfigError listing the known ones."""
    units = units if units is not None else load_units()
    if name not in units:
        raise ConfigError(where, f"unknown unit '{name}' (known: {', '.join(sorted(units))})")
    return units[name]


# Column layout of the packed stats tensor; the engine indexes columns by these constants.
MECHANIC_COLUMNS = ("heal", "heal_cost", "energy_start", "energy_max", "energy_regen", "splash", "suicide", "air",
                    "anti_air", "cliffwalk", "hp_regen", "lance")
STAT_COLUMNS = ("hp", "shield", "armor", "damage", "hits", "cooldown_loops", "range", "speed", "radius",
                "sight", "cooldown_norm") + tuple(f"bonus_{a}" for a in ATTRIBUTES) + tuple(
                    f"is_{a}" for a in ATTRIBUTES) + MECHANIC_COLUMNS
COL = {name: i for i, name in enumerate(STAT_COLUMNS)}
GAME_LOOPS_PER_SECOND = 22.4


class UnitTable:
    """The unit types one environment can produce, in a fixed order (the one-hot order).

    ``stats`` is a float tensor ``[n_types, len(STAT_COLUMNS)]``.
    """

    def __init__(self, type_names: list[str] | tuple[str, ...], units: dict[str, UnitType] | None = None):
        units = units if units is not None else load_units()
        self.names = tuple(type_names)
        self.types = tuple(get_unit(n, "unit table", units) for n in self.names)
        self.index = {n: i for i, n in enumerate(self.names)}

    def stats(self, device="cpu"):
        import torch

        rows = []
        for t in self.types:
            row = [t.hp, t.shield, t.armor, t.damage, t.hits, t.cooldown * GAME_LOOPS_PER_SECOND, t.range,
                   t.speed, t.radius, t.sight, t.cooldown_norm]
            row += [float(t.bonus.get(a, 0.0)) for a in ATTRIBUTES]
            row += [1.0 if a in t.attributes else 0.0 for a in ATTRIBUTES]
            row += [float(getattr(t, c)) for c in MECHANIC_COLUMNS]
            rows.append(row)
        return torch.tensor(rows, dtype=torch.float32, device=device)

    def uses(self, field: str) -> bool:
        """Whether any type of the table has mechanic ``field`` (a static switch for the engine)."""
        return any(bool(getattr(t, field)) for t in self.types)

    def has_shields(self, names) -> bool:
        return any(self.types[self.index[n]].shield > 0 for n in names)
