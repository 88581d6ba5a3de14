"""The scenario scheduler: a scenario file -> one episode spec per episode, as steps go by.

    scn = load_scenario("paper_dynamic")                  # scenarios/paper_dynamic.yaml (or a path)
    src = scn.source("deploy", seed=0, train_steps=50_000, deploy_steps=10_000)   # rescaled schedule
    src.set_step(4_000)                                   # env steps elapsed in this stage
    specs = src.sample(8)                                 # EpisodeSpecs for 8 resets
    scn.deploy_phases, scn.phase_source("unseen", seed=0) # the performance matrix's columns
    scn.segments("deploy"), scn.boundaries("deploy")      # where the phases change (vertical lines)

File format: :mod:`ccoma.scenarios.format`. Sampling internals: :mod:`ccoma.scenarios.sampler`.
``EpisodeSpecs.phase`` is an index into ``scenario.phase_names`` (the same index in both stages);
``unseen`` is true when the episode's (agent team, enemy team, start situation) is one no training
phase can produce.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import torch

from ccoma.envs.base import EpisodeSpecs
from ccoma.errors import ConfigError
from ccoma.scenarios.format import STAGES, ScenarioSpec, parse_scenario
from ccoma.scenarios import sampler as smp

SCENARIOS_DIR = Path(__file__).resolve().parents[2] / "scenarios"


@dataclasses.dataclass(frozen=True)
class Segment:
    """A stretch ``[start, end)`` of a stage's steps with one rule for the phase mixture.

    ``w_start``/``w_end``: probabilities over ``phase_names`` at the two ends (equal unless the
    segment drifts; in between they move linearly). Cycles appear as one segment per turn."""

    start: int
    end: int
    kind: str
    label: str
    w_start: tuple[float, ...]
    w_end: tuple[float, ...]


def scenario_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    return p if p.suffix in (".yaml", ".yml") else SCENARIOS_DIR / f"{name_or_path}.yaml"


def scenario_id(name_or_path: str | Path) -> str:
    """A scenario's one identity: its file's stem. ``shifting_spawn``, ``scenarios/shifting_spawn.yaml``
    and ``/any/dir/shifting_spawn.yaml`` all name MLflow experiment ``ccoma/shifting_spawn``, report
    folder ``reports/shifting_spawn`` and models ``ccoma-shifting_spawn-<method>``; a file's ``name:``
    field, when given, must say the same (:func:`load_scenario` checks it)."""
    return scenario_path(name_or_path).stem


def list_scenarios() -> list[str]:
    return sorted(p.stem for p in SCENARIOS_DIR.glob("*.yaml"))


def load_scenario(name_or_path: str | Path) -> "Scenario":
    """Load ``scenarios/<name>.yaml`` (or a path to a YAML file); unknown names list the shipped ones.

    Parsed and compiled once per process and file content (a Scenario is immutable, so every caller
    shares it); an edited file is read again."""
    import hashlib

    path = scenario_path(name_or_path)
    if not path.exists():
        raise ConfigError(str(path), f"no such scenario (shipped scenarios: {', '.join(list_scenarios())})")
    try:
        digest = hashlib.sha1(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read file ({exc.strerror})") from None
    return _load(str(path), str(path.resolve()), digest)


@functools.lru_cache(maxsize=32)
def _load(where: str, resolved: str, digest: str) -> "Scenario":
    from ccoma.config import load_yaml
    from ccoma.sim.maps import load_map
    from ccoma.sim.units import load_units

    def map_loader(name):
        try:
            return load_map(name)
        except ConfigError as exc:
            raise ConfigError(where, f"field 'map': map '{name}': {exc.problem}") from None

    stem = Path(resolved).stem
    spec = parse_scenario(load_yaml(where), where, stem, map_loader, load_units())
    if spec.name != stem:
        raise ConfigError(where, f"field 'name': '{spec.name}' differs from the file name '{stem}' (a scenario "
                                 f"is known by its file name in MLflow, reports and the model registry)")
    return Scenario(spec, load_map(spec.map_name))


def _scale(x: int, factor: float) -> int:
    return int(round(x * factor))


class Scenario:
    """A validated scenario, ready to produce episode sources for its stages.

    Immutable once built (``load_scenario`` hands the same object to every caller): ``rescaled``
    returns a new one, sharing the compiled phase tables (``compiled``, :class:`sampler.CompiledPhases`)."""

    def __init__(self, spec: ScenarioSpec, map_spec, scale: tuple[float, float] = (1.0, 1.0),
                 compiled: smp.CompiledPhases | None = None):
        from ccoma.sim.units import load_units

        self.spec, self.map = spec, map_spec
        self.name, self.path, self.description = spec.name, spec.path, spec.description
        self._factor = {"train": scale[0], "deploy": scale[1]}
        p = spec.protocol
        self.train_steps = _scale(p.train_steps, scale[0])
        self.deploy_steps = _scale(p.deploy_steps, scale[1])
        self.unseen_from = None if p.unseen_from is None else _scale(p.unseen_from, scale[1])
        self.phase_names: tuple[str, ...] = tuple(spec.phases)
        phases = list(spec.phases.values())
        self.unit_types: tuple[str, ...] = tuple(sorted(set().union(*(ph.agents.types() | ph.enemies.types()
                                                                       for ph in phases))))
        self.n_agents, self.n_enemies = phases[0].agents.n_units, phases[0].enemies.n_units
        units = load_units()
        self.geometry = smp.Geometry(map_spec.size, max(units[t].radius for t in self.unit_types),
                                     spec.formation.jitter, spec.formation.rotate, max(self.n_agents, self.n_enemies))
        self.compiled = compiled or smp.compile_phases(spec, map_spec, self.unit_types, self.phase_names,
                                                       self.train_phases)
        self.map_layout = None   # formation.layout 'map': the map's own start formation places both teams
        if spec.formation.layout == "map":
            from ccoma.sim.env import MapSource

            self.map_layout = MapSource(map_spec, self.unit_types)
        smp.check_geometry(self)
        smp.check_unseen(self)
        self._frozen = True

    def __setattr__(self, name, value):
        if self.__dict__.get("_frozen"):  # shared by every caller of load_scenario: read-only
            raise AttributeError(f"Scenario is immutable (tried to set '{name}'); use rescaled()")
        super().__setattr__(name, value)

    # ------------------------------------------------------------ stages and phases
    def stage_steps(self, stage: str) -> int:
        _check_stage(stage, self.path)
        return self.train_steps if stage == "train" else self.deploy_steps

    def stage_phases(self, stage: str) -> tuple[str, ...]:
        """Names of the phases a stage draws from, in order of first appearance."""
        _check_stage(stage, self.path)
        names: list[str] = []
        for e in self.spec.schedule[stage]:
            names += [n for n in e.phases if n not in names]
        return tuple(names)

    @property
    def deploy_phases(self) -> tuple[str, ...]:
        return self.stage_phases("deploy")

    @property
    def train_phases(self) -> tuple[str, ...]:
        return self.stage_phases("train")

    def rescaled(self, train_steps: int | None = None, deploy_steps: int | None = None) -> "Scenario":
        """The same scenario with every step boundary scaled to the given stage lengths."""
        p = self.spec.protocol
        tr = (train_steps / p.train_steps) if train_steps else self._factor["train"]
        de = (deploy_steps / p.deploy_steps) if deploy_steps else self._factor["deploy"]
        return Scenario(self.spec, self.map, (tr, de), self.compiled)

    def segments(self, stage: str) -> list[Segment]:
        """The stage's schedule, cycles expanded, in (rescaled) steps."""
        _check_stage(stage, self.path)
        f, idx, out = self._factor[stage], {n: i for i, n in enumerate(self.phase_names)}, []

        def onehot(names, weights):
            w = [0.0] * len(idx)
            for n, x in zip(names, weights):
                w[idx[n]] += x
            return tuple(w)

        for e in self.spec.schedule[stage]:
            if e.kind == "cycle":
                t, turn = e.start, 0
                while t < e.end:
                    name = e.phases[turn % len(e.phases)]
                    nxt = min(t + e.period, e.end)
                    w = onehot([name], [1.0])
                    out.append(Segment(_scale(t, f), _scale(nxt, f), "cycle", f"{name} (cycle {turn + 1})", w, w))
                    t, turn = nxt, turn + 1
            elif e.kind == "drift":
                a, b = e.phases
                out.append(Segment(_scale(e.start, f), _scale(e.end, f), "drift", f"{a} -> {b}",
                                   onehot([a], [1.0]), onehot([b], [1.0])))
            else:
                w = onehot(e.phases, e.weights)
                label = e.phases[0] if e.kind == "phase" else " + ".join(
                    f"{x:g} {n}" for n, x in zip(e.phases, e.weights))
                out.append(Segment(_scale(e.start, f), _scale(e.end, f), e.kind, label, w, w))
        return [s for s in out if s.end > s.start]  # heavy downscaling can shrink a turn to nothing

    def boundaries(self, stage: str) -> list[int]:
        """Steps inside the stage where the phase mixture changes rule (figure vertical lines)."""
        return [s.start for s in self.segments(stage)[1:]]

    def phase_weights(self, stage: str, step: int) -> torch.Tensor:
        """Probability of each phase (``[P]`` float64, ``phase_names`` order) at a step of a stage."""
        return _weights_at(self.segments(stage), step, self.path)

    # ------------------------------------------------------------ sources
    def source(self, stage: str, seed: int = 0, train_steps: int | None = None,
               deploy_steps: int | None = None) -> "ScenarioSource":
        """An EpisodeSource for a stage; pass the actual stage lengths to rescale the schedule."""
        scn = self.rescaled(train_steps, deploy_steps) if (train_steps or deploy_steps) else self
        segs = scn.segments(stage)
        return ScenarioSource(scn, stage, seed, segs)

    def phase_source(self, phase_name: str, seed: int = 0) -> "ScenarioSource":
        """An EpisodeSource that always draws from one phase (performance-matrix evaluation)."""
        if phase_name not in self.phase_names:
            raise ConfigError(self.path, f"unknown phase '{phase_name}' (phases: {', '.join(self.phase_names)})")
        w = tuple(1.0 if n == phase_name else 0.0 for n in self.phase_names)
        return ScenarioSource(self, f"phase:{phase_name}", seed, [Segment(0, 1, "phase", phase_name, w, w)])

    # ------------------------------------------------------------ situations
    def situation_id(self, agent_team: torch.Tensor, enemy_team: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        """One int64 per (agent team, enemy team, start situation) triple (the unseen test's key)."""
        n_e, n_s = self.compiled.situation_dims
        return (agent_team * n_e + enemy_team) * n_s + start

    def timeline(self, stage: str, points: int = 200) -> dict:
        """Exact (not sampled) shares over a stage: phases, enemy unit types, start situations.

        Returns ``steps [T]``, ``phases [T, P]``, ``enemy_types [T, U]`` (expected share of each
        type among the enemies), ``starts [T, S]`` and their label lists, segments and unseen_from."""
        total = self.stage_steps(stage)
        segs = self.segments(stage)
        steps = torch.linspace(0, total - 1, points).round().long().unique()
        w = torch.stack([_weights_at(segs, int(s), self.path) for s in steps])          # [T, P]
        share = torch.zeros(len(self.phase_names), len(self.unit_types), dtype=torch.float64)
        start_keys = self.compiled.start_keys
        start = torch.zeros(len(self.phase_names), len(start_keys), dtype=torch.float64)
        vocab = {u: i for i, u in enumerate(self.unit_types)}
        for i, name in enumerate(self.phase_names):
            ph = self.spec.phases[name]
            for comp, p in zip(ph.enemies.compositions, ph.enemies.probs):
                for u in ph.enemies.fixed + comp:
                    share[i, vocab[u]] += p / ph.enemies.n_units
            for key, p in ph.start.keys().items():
                start[i, start_keys.index(key)] += p
        return {"stage": stage, "steps": steps, "phases": w, "phase_names": self.phase_names,
                "enemy_types": w @ share, "unit_types": self.unit_types, "starts": w @ start,
                "start_keys": start_keys, "segments": segs,
                "unseen_from": self.unseen_from if stage == "deploy" else None}

    def describe_phase(self, name: str) -> dict[str, str]:
        """One phase in words: its teams, their probabilities and the start positions."""
        ph = self.spec.phases[name]

        def team(t):
            if not t.unit_types:
                return _count_text(t.fixed)
            probs = sorted(zip(t.probs, t.compositions), reverse=True)
            shown = ", ".join(f"{_count_text(c) or 'none'} {p:.2f}" for p, c in probs[:6])
            more = f", ... ({len(probs)} teams)" if len(probs) > 6 else ""
            head = f"{_count_text(t.fixed)} + " if t.fixed else ""
            return f"{head}{t.n_units - len(t.fixed)} drawn: {shown}{more}"

        st = ph.start
        starts = ", ".join(f"{k} {p:.2f}" for k, p in st.keys().items())
        if st.dist_type != "sites":
            starts = f"{st.dist_type} ({starts}; groups {st.groups[0]}-{st.groups[1]})" \
                if "surrounded" in st.dist_type else f"{st.dist_type}"
        return {"phase": name, "unseen": "yes" if self.compiled.phase_unseen[name] else "no", "agents": team(ph.agents),
                "enemies": team(ph.enemies), "start": starts, "description": ph.description}


def _count_text(units) -> str:
    """('stalker', 'stalker', 'zealot') -> '2 stalker + 1 zealot'."""
    names = sorted(set(units), key=list(units).index)
    return " + ".join(f"{list(units).count(n)} {n}" for n in names)


def _check_stage(stage: str, where: str):
    if stage not in STAGES:
        raise ConfigError(where, f"unknown stage '{stage}' (stages: {', '.join(STAGES)})")


def _weights_at(segments: list[Segment], step: int, where: str) -> torch.Tensor:
    if step < 0:
        raise ConfigError(where, f"step must be non-negative, got {step}")
    seg = next((s for s in segments if s.start <= step < s.end), segments[-1])  # past the end: last rule
    if seg.w_start == seg.w_end:
        return torch.tensor(seg.w_start, dtype=torch.float64)
    t = min(max((step - seg.start) / (seg.end - seg.start), 0.0), 1.0)
    return (1 - t) * torch.tensor(seg.w_start, dtype=torch.float64) + t * torch.tensor(seg.w_end, dtype=torch.float64)


class ScenarioSource:
    """Implements :class:`ccoma.envs.base.EpisodeSource` for one stage (or one fixed phase).

    Episode ``i`` (counted by this source) sampled at step ``s`` is a pure function of
    (scenario, stage, seed, s, i). ``sample``'s generator is accepted for the protocol and not used,
    so the world's sequence is the same for every method under test (common random numbers).
    The source is *keyed* (see ``ccoma.sim.env.SimEnv``): when the env passes per-episode ``keys``
    (a hash of its env seed and that env's episode number) they replace the counter, so each
    environment meets the same worlds whatever the batch size or the order of resets."""

    keyed = True
    draws_ahead = True  # ``sample`` takes ``ahead`` (see there)

    def __init__(self, scenario: Scenario, stage: str, seed: int, segments: list[Segment]):
        self.scenario, self.stage, self.seed, self.segments = scenario, stage, int(seed), segments
        self.unit_types = scenario.unit_types
        self.n_agents, self.n_enemies = scenario.n_agents, scenario.n_enemies
        self.phase_names = scenario.phase_names
        self.unseen_from = scenario.unseen_from if stage == "deploy" else None
        self.step = 0
        self.episodes = 0  # episodes handed out so far (the next episode's index)
        self._drawn: tuple | None = None  # (step, sorted keys, their specs) drawn ahead
        self._key = smp.stream_key(seed, stage)
        self._layout = smp.draw_layout(self.n_agents, self.n_enemies)

    def set_step(self, step: int) -> None:
        """Env steps elapsed in the current stage; decides the phase mixture of later samples."""
        if step < 0:
            raise ConfigError(self.scenario.path, f"step must be non-negative, got {step}")
        self.step = int(step)

    def phase_weights(self, step: int | None = None) -> torch.Tensor:  # [P] float64
        return _weights_at(self.segments, self.step if step is None else step, self.scenario.path)

    def sample(self, k: int, generator: torch.Generator | None = None,
               keys: torch.Tensor | None = None, ahead=None) -> EpisodeSpecs:
        """Specs for the next ``k`` episodes at the current step; ``keys [k]`` int64 replace the counter.

        ``ahead``: a function giving the keys of episodes likely asked for next at this step (an env's
        next episodes). On a miss their specs are drawn in the same call as these and kept until the
        step changes: one draw costs about the same for 1 or 150 episodes (~0.5 ms), and an env resets
        a few rows at a time. ``specs`` is a pure function, so drawing early changes no episode.
        """
        if keys is None:
            idx = torch.arange(self.episodes, self.episodes + k, dtype=torch.int64)
            self.episodes += k
            return self.specs(self.step, idx)
        keys = keys.cpu()
        self.episodes += k
        hit = self._kept(keys)
        if hit is not None:
            return hit
        if ahead is None:
            return self.specs(self.step, keys)
        drawn = torch.unique(torch.cat([keys, ahead().cpu()]))   # sorted
        self._drawn = (self.step, drawn, self.specs(self.step, drawn))
        return self._kept(keys)

    def _kept(self, keys: torch.Tensor) -> EpisodeSpecs | None:
        """The kept specs of ``keys`` at the current step, or None if any of them is not kept."""
        if self._drawn is None or self._drawn[0] != self.step or not len(keys):
            return None
        _, ks, specs = self._drawn
        pos = torch.searchsorted(ks, keys).clamp_max(len(ks) - 1)
        if not bool((ks[pos] == keys).all()):
            return None
        return EpisodeSpecs(**{f.name: getattr(specs, f.name)[pos] for f in dataclasses.fields(EpisodeSpecs)})

    def specs(self, step: int, episodes: torch.Tensor) -> EpisodeSpecs:
        """The pure function: specs of episode indices ``[k]`` at ``step``."""
        scn, k = self.scenario, len(episodes)
        d = self._layout.bind(smp.episode_uniforms(self._key, episodes, self._layout.total))
        cdf = torch.cumsum(self.phase_weights(step), 0)
        phase = smp.categorical(cdf / cdf[-1], d["phase"][:, 0])
        ally_t = torch.empty(k, self.n_agents, dtype=torch.int64)
        enemy_t = torch.empty(k, self.n_enemies, dtype=torch.int64)
        lattice = scn.map_layout is None   # else the map's own formation places the teams, below
        ally_p = torch.empty(k, self.n_agents, 2, dtype=torch.float64) if lattice else None
        enemy_p = torch.empty(k, self.n_enemies, 2, dtype=torch.float64) if lattice else None
        situation = torch.empty(k, dtype=torch.int64)
        for p in torch.unique(phase).tolist():
            sel = phase == p
            ds = d.subset(sel)
            tab = scn.compiled.tables[p]
            ally_t[sel], a_gid = smp.sample_team(tab.agents, ds["agent_comp"], ds["agent_perm"])
            enemy_t[sel], e_gid = smp.sample_team(tab.enemies, ds["enemy_comp"], ds["enemy_perm"])
            a_p, e_p, s_gid = smp.place_teams(tab.start, scn.geometry, ds, self.n_agents, self.n_enemies,
                                              place=lattice)
            if lattice:
                ally_p[sel], enemy_p[sel] = a_p, e_p
            situation[sel] = scn.situation_id(a_gid, e_gid, s_gid)
        unseen = ~torch.isin(situation, scn.compiled.train_support)
        if not lattice:   # the map's own formation, jittered by the same draws
            jit = torch.cat([d["agent_jit"].reshape(k, self.n_agents, 2), d["enemy_jit"].reshape(k, self.n_enemies, 2)],
                            dim=1).float() * 2 - 1
            ally_p, enemy_p = scn.map_layout.place(jit)
        return EpisodeSpecs(ally_types=ally_t, enemy_types=enemy_t, ally_pos=ally_p.float(),
                            enemy_pos=enemy_p.float(), phase=phase, unseen=unseen)
