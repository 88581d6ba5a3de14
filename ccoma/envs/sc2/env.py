"""``Sc2Env``: B StarCraft II games behind :class:`ccoma.envs.base.BatchedEnv`, SMACv2-style.

Each reset removes every unit and creates the episode's with ``DebugCreateUnit`` where the episode
spec (from the same :class:`EpisodeSource` the simulator uses) puts them; the enemies are the built-in
AI's (player 2), driven by the map's SMAC triggers and the game's own unit behaviour. Every step the
agents' SMAC actions become raw commands, the game advances ``step_mul`` loops, and the raw units
are copied into a :class:`ccoma.sim.engine.Battle` so that the simulator's own
:class:`ccoma.sim.observe.Observer` builds obs, state and available actions: one feature layout for
both backends, which is what lets a model trained on one run on the other. SMAC's observation and
reward options (:class:`ObsOptions`, :class:`RewardOptions`) work as on the simulator, and reward and
episode end are the simulator's own :func:`ccoma.sim.reward.step_end` (SMAC's ``reward_battle`` and
``update_units``, the medivac rule included).

A game that fails (raises, times out, ends, or does not create the units) is restarted; the episode it
was playing is *dropped*: it ends at that step with ``StepOut.dropped`` set, is not counted as a win
or a loss, and ``stats["dropped_episodes"]`` counts it. Only ``max_restarts`` failed restarts in a row
of one instance stop the job, with one clear line.
"""
from __future__ import annotations

import numpy as np
import torch

from ccoma.envs.base import EpisodeSource, StepOut
from ccoma.envs.sc2 import protocol
from ccoma.envs.sc2.config import Sc2Config
from ccoma.envs.sc2.game import GameFailure, Sc2Game
from ccoma.envs.sc2.install import FLAT_MAP
from ccoma.errors import CcomaError, ConfigError
from ccoma.sim import rng
from ccoma.sim.engine import Battle
from ccoma.sim.env import BattleViews, MapSource, layout_for
from ccoma.sim.maps import MapSpec
from ccoma.sim.observe import ObsOptions, Observer
from ccoma.sim.reward import RewardOptions, reward_divisor, step_end
from ccoma.sim.units import COL, UnitTable, load_units

FLAT_SIZE = 32.0


def default_map_path(spec: MapSpec) -> str:
    """SMACv2's empty 32x32 map when the arena fits in it, else the SMAC map the ccoma map names."""
    if max(spec.size) <= FLAT_SIZE:
        return FLAT_MAP
    return f"SMAC_Maps/{spec.sc2_map or spec.name}.SC2Map"


class Sc2Env(BattleViews):
    """B StarCraft II games stepped together; tensors on ``device`` as the simulator's."""

    def __init__(self, map_spec: MapSpec, n_envs: int, source: EpisodeSource | None = None,
                 config: Sc2Config | None = None, device: str | torch.device = "cpu", seed: int = 0,
                 env_seeds: torch.Tensor | None = None, obs_options: ObsOptions | None = None,
                 reward_options: RewardOptions | None = None):
        if n_envs < 1:
            raise ConfigError("sc2", f"n_envs must be at least 1, got {n_envs}")
        self.map, self.cfg = map_spec, config or Sc2Config()
        self.obs_options, self.reward_options = obs_options or ObsOptions(), reward_options or RewardOptions()
        self.device, self.n_envs = torch.device(device), n_envs
        self.episode_limit, self.arena = map_spec.episode_limit, map_spec.size
        self.generator = torch.Generator().manual_seed(seed)
        self._env_seeds = (rng.hash_keys(seed, torch.arange(n_envs)) if env_seeds is None else env_seeds).long()
        self.map_path = self.cfg.map or default_map_path(map_spec)
        units = load_units()
        races = (units[map_spec.agents[0]].race, units[map_spec.enemies[0]].race)
        self.games = [Sc2Game(self.cfg, self.map_path, *races, seed=int(s) & 0x7FFFFFFF)
                      for s in self._env_seeds.tolist()]
        self.stats = {"restarts": 0, "dropped_episodes": 0}
        self.dead = np.ones(n_envs, dtype=bool)  # games to (re)start before their next episode
        self._launched = np.zeros(n_envs, dtype=bool)
        from ccoma.envs.factory import describe

        self.render_label = f"StarCraft II ({describe('sc2')})"  # frames of ccoma render say where they come from
        self._pool = None
        self.set_source(source or MapSource(map_spec))

    # ----------------------------------------------------------------------------------- setup
    def reseed(self, seed: int, source: EpisodeSource | None = None) -> None:
        """As a new env would: also the restart and dropped-episode counters start at 0."""
        super().reseed(seed, source)
        self.stats = dict.fromkeys(self.stats, 0)

    def set_source(self, source: EpisodeSource) -> None:
        """Use ``source`` for every episode from now on (observation sizes must not change)."""
        from ccoma.sim.mechanics import Mechanics

        table = UnitTable(source.unit_types)
        # the simulator's layout, so models move between backends
        layout = layout_for(self.map, source, self.obs_options)
        if getattr(self, "layout", None) is not None and layout != self.layout:
            raise ConfigError("sc2", f"episode source changes the observation layout ({self.layout} -> {layout})")
        self.source, self.layout, self.unit_types = source, layout, tuple(source.unit_types)
        self.stats_table = table.stats(self.device)
        self.n_agents, self.n_enemies, self.n_actions = layout.n_agents, layout.n_enemies, layout.n_actions
        self.obs_dim, self.state_dim = layout.obs_dim, layout.state_dim
        self.observer = Observer(layout, self.arena, self.cfg.sight_range, self.cfg.shoot_range, self.device,
                                 self.cfg.move_amount, self.episode_limit)
        # the game applies heal, splash and terrain itself; the observer and the end rules only need to
        # know who heals
        self.mech = self.observer.mech = Mechanics.build(table, None, tuple(self.arena), ())
        self._ids = None
        self.battle = None

    def _build(self) -> None:
        B, N = self.n_envs, self.n_agents
        self.battle = Battle(B, N, self.n_enemies, self.device)
        self.battle.env_seed = self._env_seeds.to(self.device)
        self.battle.episode[:] = -1
        self.tags = np.zeros((B, N + self.n_enemies), dtype=np.uint64)
        self.last_actions = torch.full((B, N), -1, dtype=torch.long, device=self.device)
        self.ep_return = torch.zeros(B, device=self.device)
        self.max_reward = torch.ones(B, device=self.device)
        self.phase = torch.zeros(B, dtype=torch.long, device=self.device)
        self.unseen = torch.zeros(B, dtype=torch.bool, device=self.device)

    def _unit_ids(self, game: Sc2Game) -> None:
        """Game type ids of the vocabulary, per side, once the first game told us its unit data."""
        if self._ids is not None:
            return
        ally, enemy = protocol.unit_ids(self.unit_types, game.n_data_units, self.cfg.ally_unit_ids)
        self._ids = (ally, enemy)
        self._to_vocab = ({v: i for i, v in enumerate(ally[n] for n in self.unit_types)},
                          {v: i for i, v in enumerate(enemy[n] for n in self.unit_types)})

    def _start(self, i: int) -> None:
        """Launch game ``i``, or restart it (counted) when it ran before or a launch failed."""
        game = self.games[i]
        if self._launched[i]:
            self.stats["restarts"] += 1
            game.restart()
        else:
            self._launched[i] = True
            game.launch()
        if game.map_size != tuple(float(x) for x in self.arena):
            w, h = game.map_size
            raise CcomaError(f"sc2: map {self.map_path} is {w:g}x{h:g} but ccoma map '{self.map.name}' is "
                             f"{self.arena[0]:g}x{self.arena[1]:g}; set sim.map to a map of that size")
        self._unit_ids(game)

    # ------------------------------------------------------------------------------- episodes
    def reset(self) -> None:
        """Start a new episode in every environment."""
        if self.battle is None:
            self._build()
        self._reset_idx(torch.arange(self.n_envs))
        self._observe_all()

    def _spawn(self, i: int, types: np.ndarray, pos: np.ndarray) -> None:
        """Create env ``i``'s episode, restarting its game when it fails (``max_restarts`` tries in a row)."""
        game, N = self.games[i], self.n_agents
        for _ in range(self.cfg.max_restarts + 1):
            try:
                if self.dead[i]:
                    self._start(i)
                    self.dead[i] = False
                self._unit_ids(game)  # after a new source: the new vocabulary's ids
                ally, enemy = self._ids
                names = [self.unit_types[t] for t in types.tolist()]
                self.tags[i] = game.spawn([ally[n] for n in names[:N]], [enemy[n] for n in names[N:]],
                                          pos[:N], pos[N:])
                return
            except GameFailure as exc:
                self.dead[i] = True
                failure = exc
        raise CcomaError(f"sc2: game {i} failed {self.cfg.max_restarts + 1} times in a row ({failure}); "
                         "run `ccoma doctor`")

    def _reset_idx(self, idx: torch.Tensor) -> None:
        b = self.battle
        idx_dev = idx.to(self.device)
        b.episode[idx_dev] += 1
        if getattr(self.source, "keyed", False):
            keys = rng.hash_keys(b.env_seed[idx_dev], b.episode[idx_dev]).cpu()
            spec = self.source.sample(idx.numel(), self.generator, keys=keys)
        else:
            spec = self.source.sample(idx.numel(), self.generator)
        types = torch.cat([spec.ally_types, spec.enemy_types], 1).numpy()
        pos = torch.cat([spec.ally_pos, spec.enemy_pos], 1).to(torch.float32).numpy()
        for k, i in enumerate(idx.tolist()):  # one game per environment: requests go one by one
            self._spawn(i, types[k], pos[k])
            self._read(i)
        b.t[idx_dev] = 0
        self.last_actions[idx_dev] = -1
        self.ep_return[idx_dev] = 0.0
        N = self.n_agents
        enemy_total = (b.stats[idx_dev, N:, COL["hp"]] + b.stats[idx_dev, N:, COL["shield"]]).sum(-1)
        self.max_reward[idx_dev] = reward_divisor(self.n_enemies, enemy_total, self.cfg, self.reward_options)
        self.phase[idx_dev], self.unseen[idx_dev] = spec.phase.to(self.device), spec.unseen.to(self.device)

    def _read(self, i: int) -> None:
        """Copy env ``i``'s raw units into row ``i`` of the battle (dead units keep type and maxima)."""
        b, N = self.battle, self.n_agents
        raw = protocol.raw_arrays(self.games[i]._units(), self.tags[i])
        alive = torch.as_tensor(raw["alive"], device=self.device)
        types = b.types[i].clone()
        for side, sl in ((0, slice(0, N)), (1, slice(N, None))):
            to_vocab = self._to_vocab[side]
            ids = raw["type"][sl]
            known = [to_vocab.get(int(t), -1) for t in ids]  # game type id -> vocabulary index
            mapped = torch.tensor(known, dtype=torch.long, device=self.device)
            types[sl] = torch.where(alive[sl] & (mapped >= 0), mapped, types[sl])
        stats = self.stats_table[types].clone()
        f32 = dict(dtype=torch.float32, device=self.device)
        for col, key in (("hp", "health_max"), ("shield", "shield_max")):
            stats[:, COL[col]] = torch.where(alive, torch.as_tensor(raw[key], **f32), b.stats[i, :, COL[col]])
        b.types[i], b.stats[i], b.alive[i] = types, stats, alive
        b.pos[i] = torch.where(alive[:, None], torch.as_tensor(raw["pos"], **f32), b.pos[i])
        b.hp[i] = torch.as_tensor(raw["health"], **f32)
        b.shield[i] = torch.as_tensor(raw["shield"], **f32)
        b.cooldown[i] = torch.as_tensor(raw["cooldown"], **f32)
        slot = {int(t): u for u, t in enumerate(self.tags[i].tolist())}
        b.shot_at[i] = torch.tensor([slot.get(int(t), -1) for t in raw["target"].tolist()], device=self.device)

    def _observe_all(self) -> None:
        self._avail = self.observer.avail(self.battle)
        self._obs = self.observer.obs(self.battle, self._avail, last_actions=self.last_actions)
        self._state = self.observer.state(self.battle, self.last_actions, obs=self._obs)

    # ------------------------------------------------------------------------------------ step
    def _step_games(self, actions: np.ndarray) -> np.ndarray:
        """Send every game its commands and advance it; [B] bool: which games failed."""
        b = self.battle
        pos = b.pos.cpu().numpy()
        N = self.n_agents

        def one(i: int) -> bool:
            try:
                req = protocol.agent_commands(actions[i], self.tags[i, :N], pos[i, :N], self.tags[i, N:],
                                              self.cfg.move_amount)
                self.games[i].step(req)
                return False
            except Exception:  # noqa: BLE001 - any failure of the game or its socket drops the episode
                return True

        if self.n_envs == 1:
            return np.array([one(0)])
        if self._pool is None:  # games are separate processes: their requests can wait in parallel
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=min(self.n_envs, 16))
        return np.array(list(self._pool.map(one, range(self.n_envs))))

    def step(self, actions: torch.Tensor, auto_reset: bool = True) -> StepOut:
        """Advance every game one agent step with ``actions`` [B, N] (SMAC action ids)."""
        if self.battle is None:
            self.reset()
        b, N = self.battle, self.n_agents
        actions = actions.to(self.device, torch.long)
        prev_health, prev_alive = b.hp + b.shield, b.alive.clone()
        failed = self._step_games(actions.cpu().numpy())
        for i in np.flatnonzero(~failed).tolist():
            self._read(i)
        self.dead |= failed
        dropped = torch.as_tensor(failed, device=self.device)
        if failed.any():
            self.stats["dropped_episodes"] += int(failed.sum())
            import sys

            sys.stderr.write(f"ccoma: sc2 game(s) {np.flatnonzero(failed).tolist()} failed; restarting them, their "
                             f"episodes are dropped ({self.stats['dropped_episodes']} dropped so far)\n")
        b.t += 1
        self.last_actions = actions.clone()

        # the simulator's end of step; a dropped episode ends as a timeout worth nothing
        won, terminated, truncated, raw = step_end(b, N, self.mech.heal, self.episode_limit, self.reward_options,
                                                   self.cfg, prev_health, prev_alive)
        won, terminated, truncated = won & ~dropped, terminated & ~dropped, truncated | dropped
        reward = torch.where(dropped, torch.zeros_like(raw), raw / self.max_reward)
        self.ep_return += reward
        done = terminated | truncated
        self._observe_all()
        out = StepOut(reward=reward, terminated=terminated, truncated=truncated, won=won,
                      episode_return=torch.where(done, self.ep_return, torch.zeros_like(reward)),
                      episode_length=torch.where(done, b.t, torch.zeros_like(b.t)), phase=self.phase.clone(),
                      unseen=self.unseen.clone(), obs=self._obs, state=self._state, avail=self._avail,
                      dropped=dropped)
        if auto_reset and bool(done.any()):
            idx = done.nonzero().squeeze(1)
            self._reset_idx(idx.cpu())
            avail = self.observer.avail(b, idx)
            obs = self.observer.obs(b, avail, idx, last_actions=self.last_actions[idx])
            state = self.observer.state(b, self.last_actions[idx], idx, obs=obs)
            self._avail, self._obs, self._state = self._avail.clone(), self._obs.clone(), self._state.clone()
            self._avail[idx], self._obs[idx], self._state[idx] = avail, obs, state
        return out

    def close(self) -> None:
        """Quit every game (their processes end)."""
        for g in self.games:
            g.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
