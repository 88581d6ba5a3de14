"""The batched simulator environment (:class:`SimEnv`).

``SimEnv`` implements :class:`ccoma.envs.base.BatchedEnv`: B battles stepped at once as tensors,
finished ones reset automatically with a new episode spec from its :class:`EpisodeSource` (a
static map by default, the scenario scheduler in the continual harness). SMAC's single-environment
view over it is :class:`ccoma.smac.env.StarCraft2Env`.
"""
from __future__ import annotations

import contextlib

import torch

from ccoma.envs.base import EpisodeSource, EpisodeSpecs, StepOut
from ccoma.errors import ConfigError
from ccoma.sim import rng
from ccoma.sim.engine import SimConfig, Battle, agent_orders, formation, reset_battles, rows_writer, tick, where_writer
from ccoma.sim.maps import MapSpec, load_map, start_grid
from ccoma.sim.mechanics import Mechanics
from ccoma.sim.observe import Layout, ObsOptions, Observer
from ccoma.sim.opponents import make_opponent
from ccoma.sim.reward import RewardOptions, reward_divisor, step_end
from ccoma.sim.units import COL, UnitTable, load_units


# Compiled environments of at most this many battles reset in one compiled call over the whole batch
# (SimEnv._reset_where); 2s3z, one thread, ms per step eager / compiled reset: B=1 0.36 / 0.29,
# B=64 3.44 / 2.32, B=512 9.24 / 9.35, B=4096 49.5 / 59.3 (it observes all B battles at every reset).
COMPILED_RESET_MAX_ENVS = 256


def layout_for(spec: MapSpec, source: EpisodeSource, opts: ObsOptions | None = None) -> Layout:
    """The observation layout of ``source``'s episodes on map ``spec`` (every backend uses this one):
    SMAC's per-side layout for a map's own episodes when it has a ``smac:`` block, else ccoma's."""
    smac, opts = spec.smac, opts or ObsOptions()
    if smac is None or not (isinstance(source, MapSource) and source.spec == spec):
        table = UnitTable(source.unit_types)
        n_types = len(source.unit_types) if len(source.unit_types) > 1 else 0
        shields = table.has_shields(source.unit_types)
        return Layout(source.n_agents, source.n_enemies, n_types, shields, shields, opts=opts)
    units = load_units()
    protoss = [any(units[n].race == "protoss" for n in team) for team in (spec.agents, spec.enemies)]
    order = [tuple(names.index(v) if v in names else -1 for v in source.unit_types)
             for names in (smac.agent_types, smac.enemy_types)]
    return Layout(source.n_agents, source.n_enemies, smac.unit_type_bits, protoss[0], protoss[1],
                  order[0] if smac.unit_type_bits else (), order[1] if smac.unit_type_bits else (), opts)


class MapSource:
    """The static episode source of a map: its rosters at its default spawn sites.

    It is *keyed*: each episode's formation jitter is a pure function of a per-environment key,
    so a batch reproduces separate environments exactly.
    """

    keyed = True

    def __init__(self, spec: MapSpec, unit_types: tuple[str, ...] | None = None):
        self.spec = spec
        self.unit_types = unit_types or tuple(sorted(set(spec.agents) | set(spec.enemies)))
        table = UnitTable(self.unit_types)
        self.n_agents, self.n_enemies = len(spec.agents), len(spec.enemies)
        self._ally = torch.tensor([table.index[n] for n in spec.agents])
        self._enemy = torch.tensor([table.index[n] for n in spec.enemies])
        self._spacing = 3.0 * max(t.radius for t in table.types)
        a, e = spec.site(spec.agent_site), spec.site(spec.enemy_site)
        self._centers = torch.tensor([a.center, e.center], dtype=torch.float32)
        self._base = None  # [U, 2] start points of maps with split teams or terrain (see maps.start_grid)
        if spec.terrain or spec.agent_unit_sites or spec.enemy_unit_sites:
            radius = {t.name: t.radius for t in table.types}
            (pa, ga), (pe, ge) = start_grid(spec, "agents", radius), start_grid(spec, "enemies", radius)
            self._base = torch.tensor(pa + pe, dtype=torch.float32)
            self._jitter = 0.1 * torch.tensor(ga + ge, dtype=torch.float32)[:, None]   # [U, 1]

    def sample(self, k: int, generator: torch.Generator, keys: torch.Tensor | None = None) -> EpisodeSpecs:
        if keys is None:
            jit = torch.rand(k, self.n_agents + self.n_enemies, 2, generator=generator) * 2 - 1
        else:
            u = rng.uniform(rng.hash_keys(keys[:, None, None], torch.arange(self.n_agents + self.n_enemies)[:, None],
                                          torch.arange(2)))
            jit = u * 2 - 1
        ally_pos, enemy_pos = self.place(jit)
        return EpisodeSpecs(ally_types=self._ally.expand(k, -1), enemy_types=self._enemy.expand(k, -1),
                            ally_pos=ally_pos, enemy_pos=enemy_pos, phase=torch.zeros(k, dtype=torch.long),
                            unseen=torch.zeros(k, dtype=torch.bool))

    def place(self, jit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The map's own start formation: each team's units, in roster order, around its site (or at the
        map's start points), moved by ``jit`` [k, N + E, 2] in [-1, 1] (a tenth of a grid cell at most).
        Returns ally [k, N, 2] and enemy [k, E, 2] positions. A scenario with ``formation: {layout: map}``
        places its teams with this too."""
        k = jit.shape[0]
        if self._base is not None:
            pos = self._base + self._jitter * jit
            return pos[:, : self.n_agents], pos[:, self.n_agents:]
        ally_pos = formation(self._centers[0].expand(k, 2), self.n_agents, self._spacing, jit[:, : self.n_agents])
        enemy_pos = formation(self._centers[1].expand(k, 2), self.n_enemies, self._spacing, jit[:, self.n_agents:])
        return ally_pos, enemy_pos


class FixedSource:
    """Every episode the same: given unit types and positions (duels, tests, pictures)."""

    def __init__(self, ally_types, enemy_types, ally_pos, enemy_pos, unit_types=None):
        self.unit_types = tuple(unit_types or sorted(set(ally_types) | set(enemy_types)))
        table = UnitTable(self.unit_types)
        self.n_agents, self.n_enemies = len(ally_types), len(enemy_types)
        self._a = torch.tensor([table.index[n] for n in ally_types])
        self._e = torch.tensor([table.index[n] for n in enemy_types])
        self._ap = torch.tensor(ally_pos, dtype=torch.float32).reshape(self.n_agents, 2)
        self._ep = torch.tensor(enemy_pos, dtype=torch.float32).reshape(self.n_enemies, 2)

    def sample(self, k: int, generator: torch.Generator) -> EpisodeSpecs:
        return EpisodeSpecs(self._a.expand(k, -1), self._e.expand(k, -1), self._ap.expand(k, -1, -1),
                            self._ep.expand(k, -1, -1), torch.zeros(k, dtype=torch.long),
                            torch.zeros(k, dtype=torch.bool))


# Inductor options for the compiled step, by the CPU's vector instruction set (detected at run time
# by ``torch.backends.cpu.get_cpu_capability()``; figures: benchmarks/sim_throughput.py, docs/simulator.md):
# - cpp_wrapper: kernels are called from C++, about 2x less per-step overhead at B=1;
# - cpp.simdlen is a vector width in *bits*: 256 / 512 make inductor write AVX2 / AVX-512 code with its
#   own vector types; 8 matches no instruction set, so inductor writes plain scalar loops (its C++ flags
#   include -fno-tree-loop-vectorize, so the compiler does not vectorise them either).
SIMDLEN = {"AVX512": 8, "AVX2": 8, "DEFAULT": 8}
# episodes per environment whose worlds a keyed scenario source draws in advance (ScenarioSource.sample)
AHEAD = 4


def compile_options(capability: str | None = None, simdlen="by-cpu") -> dict:
    """Inductor options for this CPU's instruction set ("AVX512", "AVX2", ...; None = detect).

    ``simdlen`` overrides the width ``SIMDLEN`` gives the CPU (None: inductor's own choice). Options for
    scalar loops also set ``cpp.vec_isa_ok`` False: no vector instruction set is used, so inductor need
    not check which ones load (a build and a child Python per set, 1-5 s per process; see
    ``trust_cpu_flags``), and the build is the same wherever that check would fail or pass."""
    cap = (capability or torch.backends.cpu.get_cpu_capability()).upper()
    opts = {"cpp_wrapper": True}
    simd = SIMDLEN.get(cap, SIMDLEN["DEFAULT"]) if simdlen == "by-cpu" else simdlen
    if simd is not None:
        opts["cpp.simdlen"] = simd
    if not wants_vectors(opts):
        opts["cpp.vec_isa_ok"] = False
    return opts


def _quiet_cpp_extension() -> None:
    """Inductor's C++ builds (and its CPU checks) warn about a CUDA_HOME a CPU build does not use."""
    import logging

    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)


def trust_cpu_flags(options: dict) -> None:
    """Where ``options`` ask for vector code, let inductor write it wherever the CPU's flags allow it,
    without its build-and-load probe.

    Inductor checks each vector instruction set by building a test library and loading it in a child
    Python whose path puts site-packages before the standard library. Where the ``enum34`` backport is
    installed (pysc2-evolved, in ccoma's ``sc2`` and ``dev`` extras, requires it) that child imports the
    backport instead of ``enum`` and dies, inductor concludes the CPU has no vector instructions, and every
    ``cpp.simdlen`` gives plain scalar loops. The flags check (/proc/cpuinfo) still applies. Options that
    ask for scalar loops change nothing (they skip the probe themselves: ``compile_options``); otherwise
    the verdicts inductor cached in this process are recomputed."""
    from torch._inductor import config

    if wants_vectors(options):
        config.cpp.vec_isa_ok = True
        forget_vec_isa_verdicts()


def forget_vec_isa_verdicts() -> None:
    """Drop the vector-ISA verdicts inductor cached in this process (recomputed at the next compile)."""
    from torch._inductor import cpu_vec_isa

    cpu_vec_isa.valid_vec_isa_list.cache_clear()
    for isa in cpu_vec_isa.supported_vec_isa_list:  # some cache their verdict per instance
        getattr(type(isa).__bool__, "cache_clear", lambda: None)()
    # the others per instance and setting, in VecISA's name-mangled helper
    getattr(getattr(cpu_vec_isa.VecISA, "_VecISA__bool__impl", None), "cache_clear", lambda: None)()


@contextlib.contextmanager
def _isa_options(options: dict):
    """Inductor's vector-ISA settings of ``options`` for the duration; its list of usable instruction sets
    (cached for the whole process at first use) is dropped afterwards, so a list made under these options
    (empty, where they skip the check) does not outlive them."""
    from torch._inductor import config, cpu_vec_isa

    keys = {k: options[k] for k in ("cpp.simdlen", "cpp.vec_isa_ok") if k in options}
    keys.setdefault("cpp.simdlen", None)
    try:
        with config.patch(keys):
            yield
    finally:
        cpu_vec_isa.valid_vec_isa_list.cache_clear()


def wants_vectors(options: dict) -> bool:
    """Whether ``options`` ask inductor for vector code (a vector ``cpp.simdlen``, or its own choice)."""
    simd = options.get("cpp.simdlen")
    return simd is None or simd >= 128


def vector_isa(options: dict | None = None) -> str:
    """The vector instruction set inductor writes the compiled step for under ``options`` (default: the
    step's), e.g. "avx512"; "" when it writes plain scalar loops."""
    from torch._inductor import cpu_vec_isa

    opts = COMPILE_OPTIONS if options is None else options
    _quiet_cpp_extension()
    trust_cpu_flags(opts)
    with _isa_options(opts):
        isa = cpu_vec_isa.pick_vec_isa()
    return str(isa) if isa else ""


COMPILE_OPTIONS = compile_options()


class BattleViews:
    """The env contract's read side for envs that hold a simulator ``Battle`` (the simulator, and the
    StarCraft II backend, which copies the game's raw units into one): the cached observations, the
    env info and the random-state save/restore checkpoints need. Needs ``_obs``, ``_state``,
    ``_avail``, ``battle``, ``generator``, ``map``, the layout's sizes and ``_build()``."""

    def get_obs(self) -> torch.Tensor:  # [B, N, obs_dim]
        return self._obs

    def get_state(self) -> torch.Tensor:  # [B, state_dim]
        return self._state

    def get_avail_actions(self) -> torch.Tensor:  # [B, N, A] bool
        return self._avail

    def get_env_info(self) -> dict:
        return {"state_shape": self.state_dim, "obs_shape": self.obs_dim, "n_actions": self.n_actions,
                "n_agents": self.n_agents, "n_enemies": self.n_enemies, "episode_limit": self.episode_limit,
                "unit_types": list(self.unit_types), "map_name": self.map.name}

    def get_rng_state(self) -> dict:
        """The episode generator and each environment's episode counter (keys of the keyed streams)."""
        episodes = self.battle.episode.cpu().clone() if self.battle is not None else None
        return {"generator": self.generator.get_state(), "episodes": episodes}

    def reseed(self, seed: int, source=None) -> None:
        """Start over as a new env of this size, ``seed`` and ``source`` would: the same episodes from
        the next ``reset()``, while keeping what is costly to make (game processes, compiled steps)."""
        self.generator = torch.Generator().manual_seed(seed)
        self._env_seeds = rng.hash_keys(seed, torch.arange(self.n_envs)).long()
        self.set_source(source if source is not None else self.source)

    def set_rng_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        if state.get("episodes") is not None:
            if self.battle is None:
                self._build()
            self.battle.episode.copy_(state["episodes"].to(self.battle.episode.device))


class SimEnv(BattleViews):
    """B StarCraft II-style battles stepped together on one device (CPU or CUDA)."""

    def __init__(self, map_spec: MapSpec, n_envs: int, source: EpisodeSource | None = None,
                 config: SimConfig | None = None, device: str | torch.device = "cpu", seed: int = 0,
                 env_seeds: torch.Tensor | None = None, compile: bool = False,
                 obs_options: ObsOptions | None = None, reward_options: RewardOptions | None = None):
        """``compile=True`` runs the step through ``torch.compile`` (C++/Triton kernels): about 10x
        faster at small B, at the price of ~20 s compilation per batch size. Off by default.
        ``obs_options``/``reward_options`` are SMAC's observation and reward options (SMAC's defaults)."""
        if n_envs < 1:
            raise ConfigError("sim", f"n_envs must be at least 1, got {n_envs}")
        self.map, self.cfg = map_spec, config or SimConfig()
        self.obs_options, self.reward_options = obs_options or ObsOptions(), reward_options or RewardOptions()
        self.device = torch.device(device)
        self.n_envs = n_envs
        self.episode_limit = map_spec.episode_limit
        self.arena = map_spec.size
        self.generator = torch.Generator().manual_seed(seed)
        if env_seeds is None:
            env_seeds = rng.hash_keys(seed, torch.arange(n_envs))
        self._env_seeds = env_seeds.to(torch.long)
        self._advance_fn = self._compiled_advance() if compile else self._advance
        # automatic resets in one compiled call over the whole batch (_reset_where), up to this many
        # environments; above, the eager reset of the finished rows is cheaper (docs/throughput.md)
        self._reset_fn = self._compiled(SimEnv._reset_where) if compile and n_envs <= COMPILED_RESET_MAX_ENVS else None
        self.set_source(source or MapSource(map_spec))

    def _compiled_advance(self):
        """The compiled step, private to this environment.

        Dynamo keeps one cache per code object, so the step's code is copied for each environment:
        environments never evict each other's graphs (nor hit the recompile limit), and with a single
        graph per cache the guards can be skipped (about 30% of the step's cost at B=1). Skipping is
        sound here because nothing the step's guards check changes after construction: batch size,
        unit count, config numbers and tensor dtypes are fixed per environment.
        """
        return self._compiled(SimEnv._advance)

    def _compiled(self, f):
        """``f`` (a method of this class) compiled for this environment alone, as the step is."""
        import types

        trust_cpu_flags(COMPILE_OPTIONS)
        code = f.__code__.replace()  # a distinct code object: a cache of its own
        fn = torch.compile(types.MethodType(types.FunctionType(code, f.__globals__, f.__name__), self),
                           dynamic=False, options=COMPILE_OPTIONS)

        warm = []

        def call(*args):
            if not warm:  # the first call compiles (which the guard-skipping stance forbids)
                warm.append(True)
                if args[0].device.type == "cpu":
                    _quiet_cpp_extension()
                with _isa_options(COMPILE_OPTIONS):  # the compile's ISA list is not kept for other compiles
                    return fn(*args)
            with torch.compiler.set_stance("default", skip_guard_eval_unsafe=True):
                return fn(*args)
        return call

    @classmethod
    def from_map(cls, name: str, n_envs: int = 1, **kwargs) -> "SimEnv":
        return cls(load_map(name), n_envs, **kwargs)

    # ----------------------------------------------------------------------------------- setup
    def _layout(self, source: EpisodeSource) -> Layout:
        return layout_for(self.map, source, self.obs_options)

    def set_source(self, source: EpisodeSource) -> None:
        """Use ``source`` for every episode from now on (observation sizes must not change)."""
        table = UnitTable(source.unit_types, self.map.units())  # the map's own unit stats where it has them
        layout = self._layout(source)
        if getattr(self, "layout", None) is not None and layout != self.layout:
            raise ConfigError("sim", f"episode source changes the observation layout ({self.layout} -> {layout})")
        self.source, self.layout, self.unit_types = source, layout, tuple(source.unit_types)
        self.stats_table = table.stats(self.device)
        terrain = self.map.terrain_grid(self.device) if self.map.terrain else None
        starts = tuple(site.center for site in self.map.sites.values())
        self.mech = Mechanics.build(table, terrain, self.arena, starts)
        self.n_agents, self.n_enemies, self.n_actions = layout.n_agents, layout.n_enemies, layout.n_actions
        self.obs_dim, self.state_dim = layout.obs_dim, layout.state_dim
        self.observer = Observer(layout, self.arena, self.cfg.sight_range, self.cfg.shoot_range, self.device,
                                 self.cfg.move_amount, self.episode_limit)
        self.observer.mech = self.mech
        self.battle = None

    def _build(self) -> None:
        B = self.n_envs
        self.battle = Battle(B, self.n_agents, self.n_enemies, self.device)
        self.battle.env_seed = self._env_seeds.to(self.device)
        self.battle.episode[:] = -1
        self.opponent = make_opponent(self.cfg.opponent, B, self.n_enemies, self.device, self.mech)
        self.last_actions = torch.full((B, self.n_agents), -1, dtype=torch.long, device=self.device)
        self.ep_return = torch.zeros(B, device=self.device)
        self.max_reward = torch.ones(B, device=self.device)
        self.phase = torch.zeros(B, dtype=torch.long, device=self.device)
        self.unseen = torch.zeros(B, dtype=torch.bool, device=self.device)

    def reset(self) -> None:
        """Start a new episode in every environment."""
        if self.battle is None:
            self._build()
        self._reset_idx(torch.arange(self.n_envs, device=self.device))
        self._observe_all()

    def _draw(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The next episode of environments ``idx`` [k] (their episode counters move on): unit types
        [k, U], positions [k, U, 2], phase [k] and unseen flags [k], on the environment's device."""
        b = self.battle
        b.episode[idx] += 1
        k = idx.numel()
        if getattr(self.source, "keyed", False):
            keys = rng.hash_keys(b.env_seed[idx], b.episode[idx]).cpu()
            spec = self._sample_keyed(k, keys)
        else:
            spec = self.source.sample(k, self.generator)
        dev = self.device
        types = torch.cat([spec.ally_types, spec.enemy_types], dim=1).to(dev)
        pos = torch.cat([spec.ally_pos, spec.enemy_pos], dim=1).to(dev, torch.float32)
        return types, pos, spec.phase.to(dev), spec.unseen.to(dev)

    def _reset_idx(self, idx: torch.Tensor) -> None:
        self._new_episodes(rows_writer(idx), *self._draw(idx))

    def _new_episodes(self, put, types: torch.Tensor, pos: torch.Tensor, phase: torch.Tensor,
                      unseen: torch.Tensor) -> None:
        """Start the episodes ``types`` [., U], ``pos`` [., U, 2], ``phase``, ``unseen`` [.] in the battles
        ``put`` writes: in place, row by row (``rows_writer``, :meth:`_reset_idx`), or over the whole
        batch (``where_writer``, :meth:`_reset_where`)."""
        goal = None
        if self.map.enemy_goal is not None:  # the map's own attack-move target (corridor, bane_vs_bane)
            goal = torch.tensor(self.map.site(self.map.enemy_goal).center, device=pos.device)
        stats = reset_battles(self.battle, put, self.stats_table, types, pos, goal)
        self.opponent.reset_with(put)
        self.last_actions = put(self.last_actions, -1)  # no action yet: a zero row in the state, as in SMAC
        self.ep_return = put(self.ep_return, 0.0)
        enemy = stats[:, self.n_agents:]
        enemy_total = (enemy[..., COL["hp"]] + enemy[..., COL["shield"]]).sum(-1)
        self.max_reward = put(self.max_reward, reward_divisor(self.n_enemies, enemy_total, self.cfg, self.reward_options))
        self.phase, self.unseen = put(self.phase, phase), put(self.unseen, unseen)

    def _reset_where(self, done: torch.Tensor, types: torch.Tensor, pos: torch.Tensor, phase: torch.Tensor,
                     unseen: torch.Tensor) -> None:
        """:meth:`_reset_idx` and the new episodes' observations for the environments where ``done``
        [B], as one compiled call over the whole batch (``compile=True``): ``types`` [B, U], ``pos``
        [B, U, 2], ``phase`` and ``unseen`` [B] hold the new episodes in those rows (anything valid in
        the others, which keep what they had). Every environment's observation is computed and the
        reset ones' taken, so the arrays the step returned are left as they were."""
        put = where_writer(done)
        self._new_episodes(put, types, pos, phase, unseen)
        b = self.battle
        avail = self.observer.avail(b)
        obs = self.observer.obs(b, avail, last_actions=self.last_actions)
        state = self.observer.state(b, self.last_actions, obs=obs)
        self._avail, self._obs, self._state = put(self._avail, avail), put(self._obs, obs), put(self._state, state)

    def _sample_keyed(self, k: int, keys: torch.Tensor):
        """Specs of the episodes ``keys``; a source that ``draws_ahead`` (a scenario's) also draws every
        env's next ``AHEAD`` episodes in the same call (see ``ScenarioSource.sample``)."""
        if not getattr(self.source, "draws_ahead", False):
            return self.source.sample(k, self.generator, keys=keys)
        b = self.battle

        def ahead() -> torch.Tensor:
            nxt = b.episode[:, None] + torch.arange(1, AHEAD + 1, device=b.episode.device)
            return rng.hash_keys(b.env_seed[:, None], nxt).flatten()

        return self.source.sample(k, self.generator, keys=keys, ahead=ahead)

    def _observe_all(self) -> None:
        self._avail = self.observer.avail(self.battle)
        self._obs = self.observer.obs(self.battle, self._avail, last_actions=self.last_actions)
        self._state = self.observer.state(self.battle, self.last_actions, obs=self._obs)

    # ------------------------------------------------------------------------------------ step
    def step(self, actions: torch.Tensor, auto_reset: bool = True) -> StepOut:
        """Advance every battle one agent step with ``actions`` [B, N] (SMAC action ids).

        ``auto_reset=False`` leaves finished battles as they ended (for pictures); step them again
        only after :meth:`reset`.
        """
        if self.battle is None:
            self.reset()
        out = self._advance_fn(actions.to(self.device, torch.long))
        done = out.terminated | out.truncated
        if auto_reset and bool(done.any()):
            b = self.battle
            idx = done.nonzero().squeeze(1)
            if self._reset_fn is not None:   # compiled: the new episodes' rows in full-size tensors
                new = self._draw(idx)
                self._reset_fn(done, *(x.new_zeros(self.n_envs, *x.shape[1:]).index_copy_(0, idx, x) for x in new))
                return out
            self._reset_idx(idx)
            avail = self.observer.avail(b, idx)
            obs = self.observer.obs(b, avail, idx, last_actions=self.last_actions[idx])
            state = self.observer.state(b, self.last_actions[idx], idx, obs=obs)
            self._avail, self._obs, self._state = self._avail.clone(), self._obs.clone(), self._state.clone()
            self._avail[idx], self._obs[idx], self._state[idx] = avail, obs, state
        return out

    def _advance(self, actions: torch.Tensor) -> StepOut:
        """The step without automatic reset: orders, physics, reward, end, observation."""
        b, cfg, N = self.battle, self.cfg, self.n_agents
        agent_orders(b, actions, cfg.move_amount, self.mech)
        self.opponent.act(b)
        prev_health, prev_alive = b.hp + b.shield, b.alive
        loops = cfg.step_mul / cfg.substeps
        for sub in range(cfg.substeps):
            tick(b, cfg, loops, self.arena, sub, self.mech)
        b.t += 1
        self.last_actions = actions.clone()

        won, terminated, truncated, raw = step_end(b, N, self.mech.heal, self.episode_limit, self.reward_options,
                                                   cfg, prev_health, prev_alive)
        reward = raw / self.max_reward
        self.ep_return += reward
        done = terminated | truncated

        self._observe_all()
        out = StepOut(reward=reward, terminated=terminated, truncated=truncated, won=won,
                      episode_return=torch.where(done, self.ep_return, torch.zeros_like(reward)),
                      episode_length=torch.where(done, b.t, torch.zeros_like(b.t)),
                      phase=self.phase.clone(), unseen=self.unseen.clone(),
                      obs=self._obs, state=self._state, avail=self._avail)
        return out

