"""The batched simulator environment (:class:`SimEnv`) and SMAC's single-environment view.

``SimEnv`` implements :class:`ccoma.envs.base.BatchedEnv`: B battles stepped at once as tensors,
finished ones reset automatically with a new episode spec from its :class:`EpisodeSource` (a
static map by default, the scenario scheduler in the continual harness).
"""
from __future__ import annotations

import torch

from ccoma.envs.base import EpisodeSource, EpisodeSpecs, StepOut
from ccoma.errors import ConfigError
from ccoma.sim import rng
from ccoma.sim.engine import SimConfig, Battle, agent_orders, formation, reset_envs, tick
from ccoma.sim.maps import MapSpec, load_map
from ccoma.sim.observe import Layout, Observer
from ccoma.sim.opponents import make_opponent
from ccoma.sim.units import COL, UnitTable


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

    def sample(self, k: int, generator: torch.Generator, keys: torch.Tensor | None = None) -> EpisodeSpecs:
        if keys is None:
            jit = torch.rand(k, self.n_agents + self.n_enemies, 2, generator=generator) * 2 - 1
        else:
            u = rng.uniform(rng.hash_keys(keys[:, None, None], torch.arange(self.n_agents + self.n_enemies)[:, None],
                                          torch.arange(2)))
            jit = u * 2 - 1
        ally_pos = formation(self._centers[0].expand(k, 2), self.n_agents, self._spacing, jit[:, : self.n_agents])
        enemy_pos = formation(self._centers[1].expand(k, 2), self.n_enemies, self._spacing, jit[:, self.n_agents:])
        return EpisodeSpecs(ally_types=self._ally.expand(k, -1), enemy_types=self._enemy.expand(k, -1),
                            ally_pos=ally_pos, enemy_pos=enemy_pos, phase=torch.zeros(k, dtype=torch.long),
                            unseen=torch.zeros(k, dtype=torch.bool))


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
# - cpp.simdlen is a vector width in *bits* (inductor uses the ISA whose width matches, none if no
#   ISA does). 8 matches none, so inductor writes plain loops and the C++ compiler vectorises them
#   itself (-O3 -march=native). On AVX-512 that beat inductor's 512- and 256-bit vector code at
#   B=1 (8.7K vs 7.5K / 7.1K steps per CPU-second) and tied at B=512 (docs/simulator.md); on
#   AVX2-only CPUs the compiler vectorises for AVX2 the same way (not measured on such a machine).
SIMDLEN = {"AVX512": 8, "AVX2": 8, "DEFAULT": 8}


def compile_options(capability: str | None = None) -> dict:
    """Inductor options for this CPU's instruction set ("AVX512", "AVX2", ...; None = detect)."""
    cap = (capability or torch.backends.cpu.get_cpu_capability()).upper()
    opts = {"cpp_wrapper": True}
    simd = SIMDLEN.get(cap, SIMDLEN["DEFAULT"])
    if simd is not None:
        opts["cpp.simdlen"] = simd
    return opts


COMPILE_OPTIONS = compile_options()


class SimEnv:
    """B StarCraft II-style battles stepped together on one device (CPU or CUDA)."""

    def __init__(self, map_spec: MapSpec, n_envs: int, source: EpisodeSource | None = None,
                 config: SimConfig | None = None, device: str | torch.device = "cpu", seed: int = 0,
                 env_seeds: torch.Tensor | None = None, compile: bool = False):
        """``compile=True`` runs the step through ``torch.compile`` (C++/Triton kernels): about 10x
        faster at small B, at the price of ~20 s compilation per batch size. Off by default."""
        if n_envs < 1:
            raise ConfigError("sim", f"n_envs must be at least 1, got {n_envs}")
        self.map, self.cfg = map_spec, config or SimConfig()
        self.device = torch.device(device)
        self.n_envs = n_envs
        self.episode_limit = map_spec.episode_limit
        self.arena = map_spec.size
        self.generator = torch.Generator().manual_seed(seed)
        if env_seeds is None:
            env_seeds = rng.hash_keys(seed, torch.arange(n_envs))
        self._env_seeds = env_seeds.to(torch.long)
        self._advance_fn = self._compiled_advance() if compile else self._advance
        self.set_source(source or MapSource(map_spec))

    def _compiled_advance(self):
        """The compiled step, private to this environment.

        Dynamo keeps one cache per code object, so the step's code is copied for each environment:
        environments never evict each other's graphs (nor hit the recompile limit), and with a single
        graph per cache the guards can be skipped (about 30% of the step's cost at B=1). Skipping is
        sound here because nothing the step's guards check changes after construction: batch size,
        unit count, config numbers and tensor dtypes are fixed per environment.
        """
        import types

        f = SimEnv._advance
        code = f.__code__.replace()  # a distinct code object: a cache of its own
        fn = torch.compile(types.MethodType(types.FunctionType(code, f.__globals__, f.__name__), self),
                           dynamic=False, options=COMPILE_OPTIONS)

        warm = []

        def advance(actions: torch.Tensor) -> StepOut:
            if not warm:  # the first call compiles (which the guard-skipping stance forbids)
                warm.append(True)
                return fn(actions)
            with torch.compiler.set_stance("default", skip_guard_eval_unsafe=True):
                return fn(actions)
        return advance

    @classmethod
    def from_map(cls, name: str, n_envs: int = 1, **kwargs) -> "SimEnv":
        return cls(load_map(name), n_envs, **kwargs)

    # ----------------------------------------------------------------------------------- setup
    def set_source(self, source: EpisodeSource) -> None:
        """Use ``source`` for every episode from now on (observation sizes must not change)."""
        table = UnitTable(source.unit_types)
        n_types = len(source.unit_types) if len(source.unit_types) > 1 else 0
        shields = table.has_shields(source.unit_types)
        layout = Layout(source.n_agents, source.n_enemies, n_types, shields, shields)
        if getattr(self, "layout", None) is not None and layout != self.layout:
            raise ConfigError("sim", f"episode source changes the observation layout ({self.layout} -> {layout})")
        self.source, self.layout, self.unit_types = source, layout, tuple(source.unit_types)
        self.stats_table = table.stats(self.device)
        self.n_agents, self.n_enemies, self.n_actions = layout.n_agents, layout.n_enemies, layout.n_actions
        self.obs_dim, self.state_dim = layout.obs_dim, layout.state_dim
        self.observer = Observer(layout, self.arena, self.cfg.sight_range, self.cfg.shoot_range, self.device)
        self.battle = None

    def _build(self) -> None:
        B = self.n_envs
        self.battle = Battle(B, self.n_agents, self.n_enemies, self.device)
        self.battle.env_seed = self._env_seeds.to(self.device)
        self.battle.episode[:] = -1
        self.opponent = make_opponent(self.cfg.opponent, B, self.n_enemies, self.device)
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

    def _reset_idx(self, idx: torch.Tensor) -> None:
        b = self.battle
        b.episode[idx] += 1
        k = idx.numel()
        if getattr(self.source, "keyed", False):
            keys = rng.hash_keys(b.env_seed[idx], b.episode[idx]).cpu()
            spec = self.source.sample(k, self.generator, keys=keys)
        else:
            spec = self.source.sample(k, self.generator)
        dev = self.device
        types = torch.cat([spec.ally_types, spec.enemy_types], dim=1).to(dev)
        pos = torch.cat([spec.ally_pos, spec.enemy_pos], dim=1).to(dev, torch.float32)
        reset_envs(b, idx, self.stats_table, types, pos)
        self.opponent.reset(idx)
        self.last_actions[idx] = -1  # no action yet: a zero row in the state, as in SMAC
        self.ep_return[idx] = 0.0
        stats = self.stats_table[types[:, self.n_agents:]]
        enemy_total = (stats[..., COL["hp"]] + stats[..., COL["shield"]]).sum(-1)
        cfg = self.cfg
        max_reward = self.n_enemies * cfg.reward_death_value + cfg.reward_win + enemy_total
        self.max_reward[idx] = max_reward / cfg.reward_scale_rate
        self.phase[idx] = spec.phase.to(dev)
        self.unseen[idx] = spec.unseen.to(dev)

    def _observe_all(self) -> None:
        self._avail = self.observer.avail(self.battle)
        self._obs = self.observer.obs(self.battle, self._avail)
        self._state = self.observer.state(self.battle, self.last_actions)

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
            self._reset_idx(idx)
            avail = self.observer.avail(b, idx)
            obs, state = self.observer.obs(b, avail, idx), self.observer.state(b, self.last_actions[idx], idx)
            self._avail, self._obs, self._state = self._avail.clone(), self._obs.clone(), self._state.clone()
            self._avail[idx], self._obs[idx], self._state[idx] = avail, obs, state
        return out

    def _advance(self, actions: torch.Tensor) -> StepOut:
        """The step without automatic reset: orders, physics, reward, end, observation."""
        b, cfg, N = self.battle, self.cfg, self.n_agents
        agent_orders(b, actions, cfg.move_amount)
        self.opponent.act(b)
        prev_health = (b.hp + b.shield)[:, N:]
        prev_alive = b.alive[:, N:]
        loops = cfg.step_mul / cfg.substeps
        for sub in range(cfg.substeps):
            tick(b, cfg, loops, self.arena, sub)
        b.t += 1
        self.last_actions = actions.clone()

        # SMAC reward (reward_only_positive): damage dealt to enemy health + shield, plus kills, plus win
        health = (b.hp + b.shield)[:, N:]
        delta = ((prev_health - health) * prev_alive).sum(-1)
        kills = (prev_alive & ~b.alive[:, N:]).sum(-1)
        n_ally, n_enemy = b.alive[:, :N].sum(-1), b.alive[:, N:].sum(-1)
        won = (n_ally > 0) & (n_enemy == 0)
        terminated = (n_ally == 0) | (n_enemy == 0)
        truncated = ~terminated & (b.t >= self.episode_limit)
        raw = (delta + cfg.reward_death_value * kills).abs() + cfg.reward_win * won
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

    # ------------------------------------------------------------------------------ accessors
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


class StarCraft2Env:
    """SMAC's ``StarCraft2Env`` interface over one simulated battle, with SMAC's method names.

    Code written for SMAC runs unchanged apart from the import
    (``from ccoma.smac.env import StarCraft2Env``). Lists and numpy arrays come back as in SMAC;
    a finished episode stays finished until :meth:`reset`. Unavailable actions raise, as SMAC's
    assertion does.
    """

    def __init__(self, map_name: str = "2s3z", seed: int | None = None, source: EpisodeSource | None = None,
                 config: SimConfig | None = None, device: str = "cpu", **_ignored):
        self.map_name = map_name
        self._seed = 0 if seed is None else int(seed)
        self._env = SimEnv(load_map(map_name), 1, source=source, config=config, device=device, seed=self._seed,
                           env_seeds=torch.tensor([self._seed]))
        self.n_agents, self.n_enemies = self._env.n_agents, self._env.n_enemies
        self.n_actions, self.episode_limit = self._env.n_actions, self._env.episode_limit
        self._episode_steps = 0
        self._done = True
        self._stats = {"battles_won": 0, "battles_game": 0, "battles_draw": 0, "timeouts": 0, "restarts": 0}

    def reset(self):
        """Start an episode; returns ``(obs list, state)`` as SMAC does."""
        if self._env.battle is None or not self._done:
            self._env.reset()
        self._obs, self._state, self._avail = self._env.get_obs()[0], self._env.get_state()[0], \
            self._env.get_avail_actions()[0]
        self._episode_steps, self._done = 0, False
        return self.get_obs(), self.get_state()

    def step(self, actions):
        """Apply one action per agent; returns ``(reward, terminated, info)`` as SMAC does."""
        import numpy as np

        if self._done:
            raise RuntimeError("step() called on a finished episode: call reset() first")
        acts = torch.as_tensor(np.asarray(actions, dtype=np.int64)).reshape(1, self.n_agents)
        for i, a in enumerate(acts[0].tolist()):
            if not (0 <= a < self.n_actions) or not bool(self._avail[i, a]):
                raise AssertionError(f"Agent {i} cannot perform action {a}")
        out = self._env.step(acts)
        self._obs, self._state, self._avail = out.obs[0], out.state[0], out.avail[0]
        self._episode_steps += 1
        info = {"battle_won": bool(out.won[0])}
        terminated = bool(out.terminated[0] or out.truncated[0])
        if terminated:
            self._done = True
            self._stats["battles_game"] += 1
            self._stats["battles_won"] += int(out.won[0])
            if bool(out.truncated[0]):
                info["episode_limit"] = True
                self._stats["timeouts"] += 1
            elif not bool(out.won[0]) and not bool(self._env.battle.alive[0].any()):
                self._stats["battles_draw"] += 1
        return float(out.reward[0]), terminated, info

    def get_obs(self):
        return [self.get_obs_agent(i) for i in range(self.n_agents)]

    def get_obs_agent(self, agent_id: int):
        return self._obs[agent_id].cpu().numpy()

    def get_obs_size(self) -> int:
        return self._env.obs_dim

    def get_state(self):
        return self._state.cpu().numpy()

    def get_state_size(self) -> int:
        return self._env.state_dim

    def get_avail_actions(self):
        return [self.get_avail_agent_actions(i) for i in range(self.n_agents)]

    def get_avail_agent_actions(self, agent_id: int):
        return [int(x) for x in self._avail[agent_id].tolist()]

    def get_total_actions(self) -> int:
        return self.n_actions

    def get_env_info(self) -> dict:
        return {"state_shape": self.get_state_size(), "obs_shape": self.get_obs_size(),
                "n_actions": self.n_actions, "n_agents": self.n_agents, "episode_limit": self.episode_limit}

    def get_stats(self) -> dict:
        g = max(self._stats["battles_game"], 1)
        return dict(self._stats, win_rate=self._stats["battles_won"] / g)

    def seed(self) -> int:
        return self._seed

    def render(self, mode: str = "human"):
        return None

    def save_replay(self) -> None:
        """No replays without the StarCraft II game; see ``ccoma render`` for pictures."""

    def close(self) -> None:
        """Nothing to release: the simulator holds no game process."""
