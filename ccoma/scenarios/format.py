"""Scenario files (``scenarios/<name>.yaml``): parsing and validation.

A scenario names a map, states the protocol (train steps, deploy steps, the deploy step where
unseen situations begin) and describes *phases*: named distributions over episodes, written in
SMACv2's vocabulary (``team_gen``-style unit-type weights, ``start_positions`` with
``dist_type``). A *schedule* per stage says which phase(s) episodes are drawn from as steps go by:

    schedule:
      deploy:
        - {until: 200K, phase: training}                    # one phase
        - {from: 200K, drift: {from: training, to: new}}   # mixture moves linearly
        - {mix: {a: 0.7, b: 0.3}}                           # per-episode random choice of phase
        - {cycle: [a, b], period: 100K}                     # a, b, a, b ... (forgetting)

Where each team starts within its site is the ``formation``: by default (``layout: lattice``) a hex
lattice around the drawn site centre, turned by a random angle per episode (``rotate``) and jittered
(``jitter``, map units); ``formation: {layout: map}`` starts both teams in the map's own formation at
its own sites instead (``SimEnv.from_map``'s grid, a tenth of a cell of jitter: SMAC's fixed spawns;
the static ``2s3z`` and ``3s5z`` scenarios), and then no phase may set ``start_positions``.

This module turns the YAML mapping into frozen dataclasses and checks everything that can be
checked without geometry; :mod:`ccoma.scenarios.scenario` adds the geometric checks and the sampler.
"""
from __future__ import annotations

import dataclasses
import math
import re
from itertools import combinations_with_replacement

from ccoma.errors import ConfigError, excerpt

STAGES = ("train", "deploy")
START_TYPES = ("sites", "reflect", "surrounded", "surrounded_and_reflect")
WEIGHT_TOL = 1e-3       # how far a list of probabilities may sum from 1
MAX_COMPOSITIONS = 100_000

_TOP_KEYS = {"name", "description", "map", "protocol", "agents", "enemies", "start_positions", "formation",
             "phases", "schedule"}
_TEAM_KEYS = {"n_units", "fixed", "unit_types", "weights", "max", "min", "exception_unit_types"}
_START_KEYS = {"dist_type", "sites", "weights", "agent_site", "p", "groups", "spread"}
_PHASE_KEYS = {"description", "agents", "enemies", "start_positions"}
_ENTRY_KINDS = ("phase", "mix", "drift", "cycle")


@dataclasses.dataclass(frozen=True)
class TeamGen:
    """One team's unit types: ``fixed`` units first, then ``n_units - len(fixed)`` drawn per slot.

    Drawn slots are i.i.d. with ``weights`` over ``unit_types`` and conditioned on the
    constraints (SMACv2's weighted_teams, plus at-most/at-least counts). ``compositions`` lists the
    drawn part of every allowed team (sorted multiset) with its probability ``probs``.
    """

    n_units: int
    fixed: tuple[str, ...]
    unit_types: tuple[str, ...]
    weights: tuple[float, ...]
    max: tuple[tuple[str, int], ...]
    min: tuple[tuple[str, int], ...]
    exception_unit_types: tuple[str, ...]
    compositions: tuple[tuple[str, ...], ...]
    probs: tuple[float, ...]

    def types(self) -> set[str]:
        """Every type this team can contain (with nonzero probability)."""
        return set(self.fixed) | {u for c in self.compositions for u in c}


@dataclasses.dataclass(frozen=True)
class StartPositions:
    """Where the teams start. ``sites``: agents at ``agent_site``, enemies at one of ``sites``
    (``weights``); ``reflect``: agents in the west half, enemies at the mirror image; ``surrounded``:
    agents at the centre, enemies in ``groups`` (min, max) groups on the diagonals;
    ``surrounded_and_reflect``: reflect with probability ``p``, else surrounded (SMACv2's meaning)."""

    dist_type: str
    sites: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()
    agent_site: str = ""
    p: float = 0.5
    groups: tuple[int, int] = (1, 4)
    spread: float = 1.5

    def keys(self) -> dict[str, float]:
        """The start situations this can produce, with probabilities (keys name the situation)."""
        if self.dist_type == "sites":
            return {f"{self.agent_site}->{s}": w for s, w in zip(self.sites, self.weights) if w > 0}
        if self.dist_type == "surrounded_and_reflect":
            return {k: v for k, v in (("reflect", self.p), ("surrounded", 1 - self.p)) if v > 0}
        return {self.dist_type: 1.0}


@dataclasses.dataclass(frozen=True)
class Phase:
    name: str
    description: str
    agents: TeamGen
    enemies: TeamGen
    start: StartPositions


@dataclasses.dataclass(frozen=True)
class Entry:
    """One schedule entry as written: steps ``[start, end)`` of its stage and what it draws from.

    ``kind`` is phase | mix | drift | cycle; ``phases``/``weights`` are the phases involved
    (drift: ``(from, to)``; cycle: the order, ``period`` steps each)."""

    start: int
    end: int
    kind: str
    phases: tuple[str, ...]
    weights: tuple[float, ...] = ()
    period: int = 0


@dataclasses.dataclass(frozen=True)
class Protocol:
    train_steps: int
    deploy_steps: int
    unseen_from: int | None  # deploy step where unseen situations begin; None: never (static worlds)


@dataclasses.dataclass(frozen=True)
class Formation:
    jitter: float = 0.15  # per-unit random offset (map units); slots are spaced so it never causes overlap
    rotate: bool = True   # rotate each formation by a random angle
    # "lattice": each team on a hex lattice around its drawn site centre (jitter, rotate above);
    # "map": the map's own start formation at its own sites (SimEnv.from_map's, SMAC's fixed spawns)
    layout: str = "lattice"


@dataclasses.dataclass(frozen=True)
class ScenarioSpec:
    name: str
    path: str
    description: str
    map_name: str
    protocol: Protocol
    formation: Formation
    phases: dict[str, Phase]
    schedule: dict[str, tuple[Entry, ...]]


# ---------------------------------------------------------------- small field parsers
def check_keys(raw, allowed, where, field):
    if not isinstance(raw, dict):
        raise ConfigError(where, f"field '{field}' should be a mapping")
    extra = sorted(set(raw) - set(allowed), key=str)
    if extra:
        raise ConfigError(where, f"unknown key '{field + '.' if field else ''}{extra[0]}' "
                                 f"(known: {', '.join(sorted(allowed))})")


def _name(value, where, field) -> str:
    """A name (of a phase, site, unit): text, not a list or a mapping."""
    if not isinstance(value, str) or not value:
        raise ConfigError(where, f"field '{field}' should be a name, got {excerpt(value)}")
    return value


NAME_CHARS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


def scenario_name(value, where) -> str:
    """A scenario's name becomes MLflow experiment and model names and a report folder: plain
    letters, digits and ``_ . + -`` only (no '/', quotes or spaces)."""
    if not isinstance(value, str) or not NAME_CHARS.match(value):
        raise ConfigError(where, f"field 'name' should be 1-64 letters, digits or _ . + - "
                                 f"(starting with a letter or digit; the file's name when 'name' is absent), got {excerpt(value)}")
    return value


MAX_STEPS = 10 ** 12  # far beyond any budget; keeps step counts clear of float rounding and overflow


def parse_steps(value, where, field) -> int:
    """A step count: an integer, or a string like '200K' / '5M' / '1_000_000'."""
    given = value
    if isinstance(value, str):
        text = value.strip().replace("_", "").upper()
        mult = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
        try:
            number = float(text[:-1] if mult > 1 else text) * mult
        except ValueError:
            raise ConfigError(where, f"field '{field}' should be a step count like 200000 or '200K', "
                                     f"got {excerpt(value)}") from None
        value = number
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or value > MAX_STEPS or value != int(value):
        raise ConfigError(where, f"field '{field}' should be a non-negative whole step count, got {excerpt(given)}")
    return int(value)


def _probabilities(values, n, where, field) -> tuple[float, ...]:
    if not isinstance(values, list) or len(values) != n:
        raise ConfigError(where, f"field '{field}' should list {n} weights, got {excerpt(values)}")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0
           for v in values):
        raise ConfigError(where, f"field '{field}' should hold non-negative numbers, got {excerpt(values)}")
    total = float(sum(values))
    if abs(total - 1.0) > WEIGHT_TOL:
        raise ConfigError(where, f"field '{field}': weights sum to {total:g}, not 1")
    return tuple(float(v) / total for v in values)


def _units(values, where, field, units) -> tuple[str, ...]:
    if not isinstance(values, list) or any(not isinstance(v, str) for v in values):
        raise ConfigError(where, f"field '{field}' should be a list of unit names, got {excerpt(values)}")
    for v in values:
        if v not in units:
            raise ConfigError(where, f"field '{field}': unknown unit '{v}' (known: {', '.join(sorted(units))})")
    return tuple(values)


def _counts(raw, where, field, units) -> tuple[tuple[str, int], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ConfigError(where, f"field '{field}' should map unit names to counts, e.g. {{hydralisk: 1}}")
    _units(list(raw), where, field, units)
    for name, n in raw.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(where, f"field '{field}.{name}' should be a non-negative integer, got {excerpt(n)}")
    return tuple(sorted(raw.items()))


# ---------------------------------------------------------------- teams
def _enumerate(n_draw, types, weights, fixed, lo, hi, exceptions, where, field):
    """Allowed drawn parts (sorted multisets) and their probabilities under i.i.d. slots + constraints."""
    live = [(t, w) for t, w in zip(types, weights) if w > 0]
    n_combos = math.comb(n_draw + len(live) - 1, max(len(live) - 1, 0)) if live else (1 if n_draw == 0 else 0)
    if n_combos > MAX_COMPOSITIONS:
        raise ConfigError(where, f"field '{field}': {n_combos} possible teams is too many to enumerate")
    comps, probs = [], []
    for combo in combinations_with_replacement([t for t, _ in live], n_draw):
        team = list(fixed) + list(combo)
        if any(team.count(u) > n for u, n in hi) or any(team.count(u) < n for u, n in lo):
            continue
        if exceptions and all(u in exceptions for u in team):
            continue  # SMACv2: exception types cannot make up the whole team
        p = math.factorial(n_draw)
        for t, w in live:
            c = combo.count(t)
            p = p / math.factorial(c) * w ** c
        comps.append(tuple(combo))
        probs.append(p)
    total = sum(probs)
    if not comps or total <= 0:
        rules = [f"fixed {', '.join(fixed)}"] if fixed else []
        rules += [f"drawn from {', '.join(t for t, _ in live) or 'nothing'}"]
        rules += [f"at most {n} {u}" for u, n in hi] + [f"at least {n} {u}" for u, n in lo]
        rules += [f"not only {', '.join(sorted(exceptions))}"] if exceptions else []
        raise ConfigError(where, f"field '{field}': no team of {len(fixed) + n_draw} units satisfies the "
                                 f"constraints ({'; '.join(rules)})")
    return tuple(comps), tuple(p / total for p in probs)


def parse_team(raw, where, field, units) -> TeamGen:
    check_keys(raw, _TEAM_KEYS, where, field)
    fixed = _units(raw.get("fixed", []), where, f"{field}.fixed", units)
    types = _units(raw.get("unit_types", []), where, f"{field}.unit_types", units)
    if len(set(types)) != len(types):
        raise ConfigError(where, f"field '{field}.unit_types' lists a unit twice")
    n = raw.get("n_units", len(fixed) if not types else None)
    if n is None:
        raise ConfigError(where, f"field '{field}.n_units' is required when 'unit_types' is given")
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ConfigError(where, f"field '{field}.n_units' should be a positive integer, got {excerpt(n)}")
    if n < len(fixed):
        raise ConfigError(where, f"field '{field}': {len(fixed)} fixed units do not fit in n_units={n}")
    if n > len(fixed) and not types:
        raise ConfigError(where, f"field '{field}': n_units={n} but only {len(fixed)} fixed units and no 'unit_types'")
    weights = raw.get("weights", [1.0 / len(types)] * len(types) if types else [])
    weights = _probabilities(weights, len(types), where, f"{field}.weights") if types else ()
    hi = _counts(raw.get("max"), where, f"{field}.max", units)
    lo = _counts(raw.get("min"), where, f"{field}.min", units)
    exc = _units(raw.get("exception_unit_types", []), where, f"{field}.exception_unit_types", units)
    comps, probs = _enumerate(n - len(fixed), types, weights, fixed, lo, hi, set(exc), where, field)
    return TeamGen(n, fixed, types, weights, hi, lo, exc, comps, probs)


# ---------------------------------------------------------------- start positions
def parse_start(raw, where, field, map_spec) -> StartPositions:
    check_keys(raw, _START_KEYS, where, field)
    kind = raw.get("dist_type", "sites")
    if kind not in START_TYPES:
        raise ConfigError(where, f"field '{field}.dist_type' should be one of {', '.join(START_TYPES)}, got {excerpt(kind)}")
    allowed = {"sites": {"dist_type", "sites", "weights", "agent_site"}, "reflect": {"dist_type", "spread"},
               "surrounded": {"dist_type", "groups", "spread"},
               "surrounded_and_reflect": {"dist_type", "groups", "spread", "p"}}[kind]
    check_keys(raw, allowed, where, field)
    spread = raw.get("spread", 1.5)
    if isinstance(spread, bool) or not isinstance(spread, (int, float)) or spread < 0:
        raise ConfigError(where, f"field '{field}.spread' should be a non-negative number, got {excerpt(spread)}")
    if kind == "sites":
        sites = raw.get("sites", [map_spec.enemy_site])
        if not isinstance(sites, list) or not sites or any(not isinstance(s, str) for s in sites):
            raise ConfigError(where, f"field '{field}.sites' should be a non-empty list of spawn-site names")
        if len(set(sites)) != len(sites):
            raise ConfigError(where, f"field '{field}.sites' lists a site twice")
        agent_site = _name(raw.get("agent_site", map_spec.agent_site), where, f"{field}.agent_site")
        for s in list(sites) + [agent_site]:
            if s not in map_spec.sites:
                raise ConfigError(where, f"field '{field}': unknown spawn site '{s}' on map '{map_spec.name}' "
                                         f"(known: {', '.join(sorted(map_spec.sites))})")
        weights = _probabilities(raw.get("weights", [1.0 / len(sites)] * len(sites)), len(sites), where,
                                 f"{field}.weights")
        return StartPositions(kind, tuple(sites), weights, agent_site, spread=float(spread))
    groups = raw.get("groups", [1, 4])
    if (not isinstance(groups, list) or len(groups) != 2 or any(isinstance(g, bool) or not isinstance(g, int)
                                                                for g in groups) or not 1 <= groups[0] <= groups[1] <= 4):
        raise ConfigError(where, f"field '{field}.groups' should be [min, max] with 1 <= min <= max <= 4, got {excerpt(groups)}")
    p = raw.get("p", 0.5)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ConfigError(where, f"field '{field}.p' should be a probability, got {excerpt(p)}")
    return StartPositions(kind, p=float(p), groups=(groups[0], groups[1]), spread=float(spread))


# ---------------------------------------------------------------- schedule
def _entry_phases(raw, kind, where, field, phases):
    """(phase names, weights, period) of one entry, names checked against the defined phases."""
    value = raw[kind]
    period = 0
    if kind == "phase":
        names, weights = [_name(value, where, f"{field}.phase")], [1.0]
    elif kind == "mix":
        if not isinstance(value, dict) or not value:
            raise ConfigError(where, f"field '{field}.mix' should map phase names to probabilities")
        names = list(value)
        weights = list(_probabilities(list(value.values()), len(names), where, f"{field}.mix"))
    elif kind == "drift":
        check_keys(value, {"from", "to"}, where, f"{field}.drift")
        if "from" not in value or "to" not in value:
            raise ConfigError(where, f"field '{field}.drift' needs 'from' and 'to' phases")
        names, weights = [_name(value["from"], where, f"{field}.drift.from"),
                          _name(value["to"], where, f"{field}.drift.to")], []
    else:
        if not isinstance(value, list) or len(value) < 2:
            raise ConfigError(where, f"field '{field}.cycle' should list at least two phases")
        if "period" not in raw:
            raise ConfigError(where, f"field '{field}' needs 'period' (steps per phase of the cycle)")
        value = [_name(v, where, f"{field}.cycle[{i}]") for i, v in enumerate(value)]
        period = parse_steps(raw["period"], where, f"{field}.period")
        if period <= 0:
            raise ConfigError(where, f"field '{field}.period' must be positive")
        names, weights = list(value), []
    for name in names:
        if name not in phases:
            raise ConfigError(where, f"field '{field}': unknown phase '{name}' (defined: {', '.join(phases)})")
    return tuple(names), tuple(weights), period


def parse_stage(raw, stage, total, where, phases) -> tuple[Entry, ...]:
    """Schedule entries of one stage; they must tile ``[0, total)`` with no gap and no overlap."""
    field = f"schedule.{stage}"
    if not isinstance(raw, list) or not raw:
        raise ConfigError(where, f"field '{field}' should be a non-empty list of schedule entries")
    entries, prev_end = [], 0
    for i, item in enumerate(raw):
        f = f"{field}[{i}]"
        check_keys(item, {"from", "until", "period"} | set(_ENTRY_KINDS), where, f)
        kinds = [k for k in _ENTRY_KINDS if k in item]
        if len(kinds) != 1:
            raise ConfigError(where, f"field '{f}' needs exactly one of {', '.join(_ENTRY_KINDS)}")
        if "period" in item and kinds[0] != "cycle":
            raise ConfigError(where, f"field '{f}.period' only applies to a cycle")
        start = parse_steps(item["from"], where, f + ".from") if "from" in item else prev_end
        if start != prev_end:
            what = "leaves a gap" if start > prev_end else "overlaps the previous entry"
            raise ConfigError(where, f"field '{f}' starts at step {start} but the previous one ends at "
                                     f"{prev_end}: the schedule {what}")
        nxt = raw[i + 1] if i + 1 < len(raw) else None
        default_end = total if nxt is None else (parse_steps(nxt["from"], where, f"{field}[{i + 1}].from")
                                                 if isinstance(nxt, dict) and "from" in nxt else None)
        end = parse_steps(item["until"], where, f + ".until") if "until" in item else default_end
        if end is None:
            raise ConfigError(where, f"field '{f}' needs 'until' (or the next entry a 'from')")
        if end <= start:
            raise ConfigError(where, f"field '{f}' ends at step {end}, not after its start {start}")
        names, weights, period = _entry_phases(item, kinds[0], where, f, phases)
        entries.append(Entry(start, end, kinds[0], names, weights, period))
        prev_end = end
    if prev_end != total:
        what = "runs past" if prev_end > total else "stops before"
        raise ConfigError(where, f"field '{field}' ends at step {prev_end}: it {what} the {stage} stage's "
                                 f"{total} steps")
    return tuple(entries)


def parse_protocol(raw, where) -> Protocol:
    check_keys(raw, {"train_steps", "deploy_steps", "unseen_from"}, where, "protocol")
    for key in ("train_steps", "deploy_steps"):
        if key not in raw:
            raise ConfigError(where, f"missing field 'protocol.{key}'")
    train = parse_steps(raw["train_steps"], where, "protocol.train_steps")
    deploy = parse_steps(raw["deploy_steps"], where, "protocol.deploy_steps")
    if train <= 0 or deploy <= 0:
        raise ConfigError(where, "fields 'protocol.train_steps' and 'protocol.deploy_steps' must be positive")
    unseen = raw.get("unseen_from")
    if unseen is not None:
        unseen = parse_steps(unseen, where, "protocol.unseen_from")
        if unseen >= deploy:
            raise ConfigError(where, f"field 'protocol.unseen_from' ({unseen}) must be below deploy_steps ({deploy})")
    return Protocol(train, deploy, unseen)


# ---------------------------------------------------------------- the whole file
def _phase(name, raw, defaults, where, units, map_spec) -> Phase:
    field = f"phases.{name}"
    raw = {} if raw is None else raw
    check_keys(raw, _PHASE_KEYS, where, field)
    desc = raw.get("description", "")
    if not isinstance(desc, str):
        raise ConfigError(where, f"field '{field}.description' should be text")
    teams = {}
    for side in ("agents", "enemies"):
        if side in raw:
            teams[side] = parse_team(raw[side], where, f"{field}.{side}", units)
        else:
            teams[side] = defaults[side]
    start = parse_start(raw["start_positions"], where, f"{field}.start_positions", map_spec) \
        if "start_positions" in raw else defaults["start_positions"]
    return Phase(str(name), desc, teams["agents"], teams["enemies"], start)


def _check_sizes(phases: dict[str, Phase], where):
    """Observation sizes must not change across phases: team sizes are constant."""
    first = next(iter(phases.values()))
    for p in phases.values():
        for side in ("agents", "enemies"):
            a, b = getattr(first, side).n_units, getattr(p, side).n_units
            if a != b:
                raise ConfigError(where, f"team sizes change: phase '{first.name}' has {a} {side}, "
                                         f"phase '{p.name}' has {b} (observation sizes must stay fixed)")


def parse_scenario(raw, where: str, stem: str, map_loader, units) -> ScenarioSpec:
    """Validate a scenario mapping (as read from YAML). ``map_loader(name)`` returns a MapSpec."""
    if not isinstance(raw, dict):
        raise ConfigError(where, "a scenario file should be a mapping")
    check_keys(raw, _TOP_KEYS, where, "")
    for key in ("description", "map", "protocol", "phases", "schedule"):
        if key not in raw:
            raise ConfigError(where, f"missing field '{key}'")
    if not isinstance(raw["description"], str) or not raw["description"].strip():
        raise ConfigError(where, "field 'description' should be a one-line text")
    if not isinstance(raw["map"], str):
        raise ConfigError(where, "field 'map' should name a map in maps/")
    map_spec = map_loader(raw["map"])
    protocol = parse_protocol(raw["protocol"], where)
    formation = _formation(raw.get("formation"), where)
    defaults = {
        "agents": parse_team(raw["agents"], where, "agents", units) if "agents" in raw
        else parse_team({"fixed": list(map_spec.agents)}, where, "agents", units),
        "enemies": parse_team(raw["enemies"], where, "enemies", units) if "enemies" in raw
        else parse_team({"fixed": list(map_spec.enemies)}, where, "enemies", units),
        "start_positions": parse_start(raw.get("start_positions", {}), where, "start_positions", map_spec),
    }
    if not isinstance(raw["phases"], dict) or not raw["phases"]:
        raise ConfigError(where, "field 'phases' should map phase names to their description")
    if formation.layout == "map":
        set_start = ["start_positions"] if "start_positions" in raw else []
        set_start += [f"phases.{n}.start_positions" for n, p in raw["phases"].items()
                      if isinstance(p, dict) and "start_positions" in p]
        if set_start:
            raise ConfigError(where, f"field '{set_start[0]}': formation.layout 'map' starts both teams at the "
                                     "map's own sites; leave start_positions out")
    phases = {str(n): _phase(n, p, defaults, where, units, map_spec) for n, p in raw["phases"].items()}
    _check_sizes(phases, where)
    check_keys(raw["schedule"], set(STAGES), where, "schedule")
    schedule = {}
    for stage in STAGES:
        if stage not in raw["schedule"]:
            raise ConfigError(where, f"missing field 'schedule.{stage}'")
        total = protocol.train_steps if stage == "train" else protocol.deploy_steps
        schedule[stage] = parse_stage(raw["schedule"][stage], stage, total, where, phases)
    used = {n for entries in schedule.values() for e in entries for n in e.phases}
    unused = [n for n in phases if n not in used]
    if unused:
        raise ConfigError(where, f"phase '{unused[0]}' is defined but never scheduled")
    return ScenarioSpec(scenario_name(raw.get("name", stem), where), where, " ".join(raw["description"].split()), map_spec.name,
                        protocol, formation, phases, schedule)


def _formation(raw, where) -> Formation:
    if raw is None:
        return Formation()
    check_keys(raw, {"jitter", "rotate", "layout"}, where, "formation")
    layout = raw.get("layout", Formation.layout)
    if layout not in ("lattice", "map"):
        raise ConfigError(where, f"field 'formation.layout' should be 'lattice' or 'map', got {excerpt(layout)}")
    if layout == "map" and ({"jitter", "rotate"} & set(raw)):
        raise ConfigError(where, "fields 'formation.jitter' and 'formation.rotate' shape the lattice layout; "
                                 "'map' places units in the map's own formation")
    jitter = raw.get("jitter", Formation.jitter)
    if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0 <= jitter <= 1:
        raise ConfigError(where, f"field 'formation.jitter' should be a number in [0, 1], got {excerpt(jitter)}")
    rotate = raw.get("rotate", Formation.rotate)
    if not isinstance(rotate, bool):
        raise ConfigError(where, f"field 'formation.rotate' should be true or false, got {excerpt(rotate)}")
    return Formation(float(jitter), rotate, layout)
