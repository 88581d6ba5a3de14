"""SMAC's ``StarCraft2Env`` over one simulated battle: SMAC's constructor, methods and episode ends.

Every option of SMAC's constructor is accepted under SMAC's name and default. Those that change
observations, state, reward, time or episode ends do what SMAC does (see docs/smac.md); those that
only make sense with the game (``difficulty``, ``game_version``, ``replay_dir``, ``replay_prefix``,
``window_size_x/y``) are accepted and, when set to anything but SMAC's default, named once in a
warning. An unknown keyword is a ``TypeError``, as in SMAC. ``backend="sc2"`` plays the battle in
StarCraft II itself (:mod:`ccoma.envs.sc2`) with every option alike; ``difficulty`` and
``game_version`` then go to the game.

Speed: one step runs the batched simulator at B=1 (``compile=True`` runs its compiled step), and
observations, state and masks are converted once per step and cached, so the per-agent methods
(``get_obs_agent``, ``get_avail_agent_actions``) only index the cache.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import warnings

import numpy as np
import torch

from ccoma.smac.env.heuristic import heuristic_actions
from ccoma.smac.env.multiagentenv import MultiAgentEnv

log = logging.getLogger("ccoma.smac")

# options that need the StarCraft II game, with SMAC's defaults: accepted, named once when changed
GAME_ONLY = {"difficulty": "7", "game_version": None, "replay_dir": "", "replay_prefix": "",
             "window_size_x": 1920, "window_size_y": 1200}
SC2_HONOURED = ("difficulty", "game_version")  # those the sc2 backend passes to the game
_warned: set[str] = set()


def _warn_once(names: list[str], what: str, who: str = "ccoma's simulator has no StarCraft II game") -> None:
    new = [n for n in names if n not in _warned]
    if new:
        _warned.update(new)
        warnings.warn(f"{who}: {', '.join(new)} {what}", stacklevel=3)


def random_seed() -> int:
    """A fresh seed from the operating system (SMAC's ``seed=None``: a random game seed)."""
    return int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF


def _host(t: torch.Tensor) -> np.ndarray:
    """A numpy view of a CPU tensor (a copy from another device)."""
    return t.numpy() if t.device.type == "cpu" else t.cpu().numpy()


class StarCraft2Env(MultiAgentEnv):
    """SMAC's ``StarCraft2Env`` on ccoma's simulator; change the import, keep the code.

    Beyond SMAC's options, keyword-only: ``source`` (an episode source, e.g. a scenario phase),
    ``config`` (a :class:`~ccoma.sim.engine.SimConfig` for physics and the opponent; SMAC's options
    override its step_mul, move_amount and reward numbers), ``device`` and ``compile`` (run the
    compiled step: ~20 s to compile, then several times faster) and ``backend`` (``"sim"``, or ``"sc2"``
    for StarCraft II itself: ``config`` is then an :class:`~ccoma.envs.sc2.config.Sc2Config`).
    """

    def __init__(self, map_name="8m", step_mul=8, move_amount=2, difficulty="7", game_version=None, seed=None,
                 continuing_episode=False, obs_all_health=True, obs_own_health=True, obs_last_action=False,
                 obs_pathing_grid=False, obs_terrain_height=False, obs_instead_of_state=False,
                 obs_timestep_number=False, state_last_action=True, state_timestep_number=False, reward_sparse=False,
                 reward_only_positive=True, reward_death_value=10, reward_win=200, reward_defeat=0,
                 reward_negative_scale=0.5, reward_scale=True, reward_scale_rate=20, replay_dir="", replay_prefix="",
                 window_size_x=1920, window_size_y=1200, heuristic_ai=False, heuristic_rest=False, debug=False,
                 *, source=None, config=None, device="cpu", compile=False, backend="sim"):
        a = dict(locals())
        self._configure(a)
        self._make_sim(a)

    def _configure(self, a: dict) -> None:
        """SMAC's attributes and ccoma's option objects from the constructor's arguments ``a``."""
        from ccoma.sim.observe import ObsOptions
        from ccoma.sim.reward import RewardOptions

        self.backend = a["backend"]
        ignored = GAME_ONLY if self.backend != "sc2" else {k: v for k, v in GAME_ONLY.items() if k not in SC2_HONOURED}
        changed = [k for k, default in ignored.items() if a[k] != default]
        if changed and self.backend == "sc2":
            _warn_once(changed, "have no effect here (no replays or window; see docs/smac.md)", "ccoma's sc2 backend")
        elif changed:
            _warn_once(changed, "have no effect here (the enemy is ccoma's built-in AI; see docs/smac.md)")
        self.difficulty, self.game_version = a["difficulty"], a["game_version"]
        self.replay_dir, self.replay_prefix = a["replay_dir"], a["replay_prefix"]
        self.window_size = (a["window_size_x"], a["window_size_y"])
        self.map_name, self._move_amount = a["map_name"], a["move_amount"]
        self._step_mul = 8 if a["step_mul"] is None else a["step_mul"]  # None: the map's default (8 on every SMAC map)
        if isinstance(self._step_mul, bool) or not isinstance(self._step_mul, int) or self._step_mul < 1:
            raise ValueError(f"step_mul must be a positive integer (game loops per step), got {a['step_mul']!r}")
        if not self._move_amount > 0:
            raise ValueError(f"move_amount must be positive, got {self._move_amount!r}")
        self.continuing_episode, self.debug = a["continuing_episode"], a["debug"]
        self.heuristic_ai, self.heuristic_rest = a["heuristic_ai"], a["heuristic_rest"]
        self._seed = random_seed() if a["seed"] is None else int(a["seed"])
        self.obs_options = ObsOptions(**{f.name: bool(a[f.name]) for f in dataclasses.fields(ObsOptions)})
        self.reward_options = RewardOptions(**{f.name: type(f.default)(a[f.name])
                                               for f in dataclasses.fields(RewardOptions)})

    def _make_sim(self, a: dict) -> None:
        from ccoma.envs import make

        cfg = self._backend_config(a)
        self._env = env = make(self.backend, self.map_name, 1, self._seed, a["device"], source=a["source"], config=cfg,
                               compile=a["compile"], env_seeds=torch.tensor([self._seed]),
                               obs_options=self.obs_options, reward_options=self.reward_options)
        L = env.layout
        self.n_agents, self.n_enemies = env.n_agents, env.n_enemies
        self.n_actions, self.episode_limit = env.n_actions, env.episode_limit
        self.n_actions_no_attack, self.n_actions_move = 6, 4
        self.shield_bits_ally, self.shield_bits_enemy = int(L.ally_shield), int(L.enemy_shield)
        self.unit_type_bits = L.n_types
        self.map_type = env.map.smac.map_type if env.map.smac is not None else None
        self._episode_count = self._episode_steps = self._total_steps = 0
        self.battles_won = self.battles_game = self.timeouts = self.force_restarts = 0
        self._done = True
        self._targets = np.full(self.n_agents, -1, dtype=np.int64)
        self._cache: dict = {}

    def _backend_config(self, a: dict):
        """The backend's config with SMAC's step, move and reward numbers (and, on sc2, the game's options)."""
        smac = dict(step_mul=self._step_mul, move_amount=float(self._move_amount),
                    reward_death_value=float(a["reward_death_value"]), reward_win=float(a["reward_win"]),
                    reward_scale_rate=float(a["reward_scale_rate"]))
        if self.backend == "sc2":
            from ccoma.envs.sc2.config import Sc2Config

            # SMAC's difficulty codes "1".."9", "A" are the game's levels 1-10
            return dataclasses.replace(a["config"] or Sc2Config(), **smac, difficulty=int(str(a["difficulty"]), 16),
                                       game_version=a["game_version"] or "")
        from ccoma.sim.engine import SimConfig

        return dataclasses.replace(a["config"] or SimConfig(), **smac)

    # ----------------------------------------------------------------------------------- episode
    def reset(self):
        """Start an episode; returns ``(obs list, state)`` as SMAC does."""
        env = self._env
        env.reset()
        self._set(env.get_obs()[0], env.get_state()[0], env.get_avail_actions()[0])
        self._episode_steps, self._done = 0, False
        self._targets[:] = -1
        if self.debug:
            log.debug("Started episode %d", self._episode_count)
        return self.get_obs(), self.get_state()

    def _set(self, obs: torch.Tensor, state: torch.Tensor, avail: torch.Tensor) -> None:
        """Keep this step's tensors; numpy and list forms are made on first use (once per step)."""
        self._obs_t, self._state_t, self._avail_t = obs, state, avail
        self._cache = {}

    def _np(self, key: str) -> np.ndarray:
        c = self._cache
        if key not in c:
            t = {"obs": self._obs_t, "state": self._state_t, "avail": self._avail_t}[key]
            c[key] = _host(t)
        return c[key]

    def _avail_lists(self) -> list[list[int]]:
        c = self._cache
        if "avail_list" not in c:
            c["avail_list"] = self._np("avail").astype(np.int64).tolist()
        return c["avail_list"]

    def step(self, actions):
        """Apply one action per agent; returns ``(reward, terminated, info)`` as SMAC does.

        An unavailable action raises ``AssertionError`` (SMAC's assertion). With ``heuristic_ai`` the
        given actions are replaced by the heuristic's, written back into ``actions`` as SMAC does.
        """
        if self._done:
            raise RuntimeError("step() called on a finished episode: call reset() first")
        acts = np.array(actions.cpu() if isinstance(actions, torch.Tensor) else actions, dtype=np.int64).reshape(-1)
        N = self.n_agents
        if acts.shape != (N,):
            raise ValueError(f"expected {N} actions, got {acts.shape[0]}")
        if self.heuristic_ai:
            acts = self._heuristic(actions)
        else:
            ok = (acts >= 0) & (acts < self.n_actions)
            ok[ok] = self._np("avail")[np.arange(N)[ok], acts[ok]]
            if not ok.all():
                i = int(np.argmin(ok))
                raise AssertionError(f"Agent {i} cannot perform action {acts[i]}")
        # the step without automatic reset: the final observation stays until reset(), as in SMAC
        out = self._env.step(torch.from_numpy(acts).view(1, N), auto_reset=False)
        self._set(out.obs[0], out.state[0], out.avail[0])
        self._total_steps += 1
        self._episode_steps += 1
        # one host copy of the step's scalars (zero-copy on CPU) instead of one .item() each
        flags = _host(torch.cat([out.won, out.terminated, out.truncated, self._env.battle.alive[0]]))
        won, terminated, truncated = bool(flags[0]), bool(flags[1]), bool(flags[2])
        alive = flags[3:]
        info = {"battle_won": won, "dead_allies": int(N - alive[:N].sum()),
                "dead_enemies": int(self.n_enemies - alive[N:].sum())}
        if terminated or truncated:
            self._done = True
            self._episode_count += 1
            self.battles_game += 1
            self.battles_won += won
            if truncated:
                self.timeouts += 1
                if self.continuing_episode:
                    info["episode_limit"] = True
        reward = float(_host(out.reward)[0])
        if self.debug:
            log.debug("Actions %s; reward %s; info %s", acts.tolist(), reward, info)
        return reward, terminated or truncated, info

    def _heuristic(self, actions) -> np.ndarray:
        b, N = self._env.battle, self.n_agents
        from ccoma.sim.units import COL

        names = [self._env.unit_types[i] for i in b.types[0].tolist()]
        health = (b.hp[0] / b.stats[0, :, COL["hp"]]).cpu().numpy()
        acts = heuristic_actions(self._targets, b.pos[0].cpu().numpy(), b.alive[0].cpu().numpy(), health, names, N,
                                 self._np("avail"), self.heuristic_rest, self.map_type == "MMM")
        try:  # SMAC writes the heuristic's choices back into the caller's list
            for i in range(N):
                actions[i] = int(acts[i])
        except TypeError:
            pass
        return acts

    # -------------------------------------------------------------------------------- accessors
    def get_obs(self):
        return list(self._np("obs").copy())

    def get_obs_agent(self, agent_id):
        return self._np("obs")[agent_id].copy()

    def get_obs_size(self):
        return self._env.obs_dim

    def get_state(self):
        return self._np("state").copy()

    def get_state_size(self):
        return self._env.state_dim

    def get_avail_actions(self):
        return [list(row) for row in self._avail_lists()]

    def get_avail_agent_actions(self, agent_id):
        return list(self._avail_lists()[agent_id])

    def get_total_actions(self):
        return self.n_actions

    @property
    def last_action(self) -> np.ndarray:
        """[N, A] one-hot of the agents' last actions (zeros before the first step), as SMAC's."""
        la = self._env.last_actions[0].cpu().numpy()
        return (la[:, None] == np.arange(self.n_actions)).astype(np.float64)

    def get_obs_move_feats_size(self):
        return self._env.layout.move_feats

    def get_obs_enemy_feats_size(self):
        return self.n_enemies, self._env.layout.enemy_feats

    def get_obs_ally_feats_size(self):
        return self.n_agents - 1, self._env.layout.ally_feats

    def get_obs_own_feats_size(self):
        return self._env.layout.own_feats

    @property
    def ally_state_attr_names(self) -> list[str]:
        bits = [f"type_{i}" for i in range(self.unit_type_bits)]
        return ["health", "energy/cooldown", "rel_x", "rel_y"] + ["shield"] * self.shield_bits_ally + bits

    @property
    def enemy_state_attr_names(self) -> list[str]:
        bits = [f"type_{i}" for i in range(self.unit_type_bits)]
        return ["health", "rel_x", "rel_y"] + ["shield"] * self.shield_bits_enemy + bits

    def get_ally_num_attributes(self):
        return len(self.ally_state_attr_names)

    def get_enemy_num_attributes(self):
        return len(self.enemy_state_attr_names)

    def get_state_dict(self):
        """The state's parts: allies [N, F], enemies [E, F], last_action [N, A], timestep (per the options)."""
        N, E, A = self.n_agents, self.n_enemies, self.n_actions
        fa, fe = self.get_ally_num_attributes(), self.get_enemy_num_attributes()
        s = self._plain_state() if self.obs_options.obs_instead_of_state else self._np("state")
        out = {"allies": s[:N * fa].reshape(N, fa).copy(), "enemies": s[N * fa:N * fa + E * fe].reshape(E, fe).copy()}
        at = N * fa + E * fe
        if self.obs_options.state_last_action:
            out["last_action"] = s[at:at + N * A].reshape(N, A).copy()
            at += N * A
        if self.obs_options.state_timestep_number:
            out["timestep"] = float(s[at])
        return out

    def _plain_state(self) -> np.ndarray:
        """The unit-feature state even when ``obs_instead_of_state`` replaces it (SMAC's state dict)."""
        from ccoma.sim.observe import Observer

        env = self._env
        layout = dataclasses.replace(env.layout, opts=dataclasses.replace(self.obs_options, obs_instead_of_state=False))
        observer = Observer(layout, env.arena, env.cfg.sight_range, env.cfg.shoot_range, env.device,
                            env.cfg.move_amount, env.episode_limit)
        return _host(observer.state(env.battle, env.last_actions)[0])

    def get_visibility_matrix(self):
        """[N, N + E] bool: which units each living agent sees (alive, centre distance < sight 9)."""
        b, N = self._env.battle, self.n_agents
        pos, alive = _host(b.pos[0]), _host(b.alive[0])
        d = np.linalg.norm(pos[None, :, :] - pos[:N, None, :], axis=-1)
        vis = alive[:N, None] & alive[None, :] & (d < self._env.cfg.sight_range)
        vis[np.arange(N), np.arange(N)] = False
        return vis

    def get_unit_types(self):
        """The units' type names, agents then enemies (SMAC returns the game's type ids)."""
        return [self._env.unit_types[t] for t in self._env.battle.types[0].tolist()]

    def get_stats(self):
        """SMAC's counts: every ended episode is a game; timeouts are its draws."""
        return {"battles_won": self.battles_won, "battles_game": self.battles_game, "battles_draw": self.timeouts,
                "win_rate": self.battles_won / self.battles_game if self.battles_game else 0.0,
                "timeouts": self.timeouts, "restarts": self.force_restarts}

    def seed(self):
        """The seed in use (drawn at random when none was given)."""
        return self._seed

    def reseed(self, seed: int) -> None:
        """Replay from ``seed``: the next :meth:`reset` starts that seed's first episode (ccoma's addition,
        for PettingZoo's ``reset(seed=...)``; SMAC fixes the seed at construction)."""
        self._seed = int(seed)
        env = self._env
        env._env_seeds = torch.tensor([self._seed])
        env.generator.manual_seed(self._seed)
        if env.battle is not None:  # in place: the compiled step keeps reading the same tensors
            env.battle.env_seed.fill_(self._seed)
            env.battle.episode.fill_(-1)
        self._done = True

    def render(self, mode="human"):
        _warn_once(["render"], "draws no game window here; `ccoma render` writes PNG frames and GIFs")

    def save_replay(self):
        _warn_once(["save_replay"], "writes no replay here; `ccoma render` writes PNG frames and GIFs")

    def close(self):
        """Quit the game on sc2; nothing to release on the simulator (it holds no game process)."""
        close = getattr(self._env, "close", None)
        if close is not None:
            close()
