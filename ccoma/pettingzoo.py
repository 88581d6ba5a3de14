"""PettingZoo's parallel API over ccoma's SMAC view: ``ccoma.pettingzoo.parallel_env(map_name="3m")``.

Conventions (those of SMAC's own PettingZoo wrapper, ``smac.env.pettingzoo.StarCraft2PZEnv``):
- agents are named ``<unit type>_<i>`` (``stalker_0, stalker_1, zealot_0, ...``), in SMAC's agent order;
- an observation is ``{"observation": float32 [obs_dim], "action_mask": int8 [n_actions - 1]}``;
  actions are SMAC's without the no-op (action ``a`` here is SMAC's ``a + 1``), so ``Discrete(n_actions - 1)``;
- every living agent gets the team reward; ``infos`` carry SMAC's step info (battle_won,
  dead_allies, dead_enemies);
- a dead agent is terminated and leaves ``agents``; a won, lost or drawn battle terminates everyone;
  a timeout (SMAC's episode limit, or ``max_cycles``) truncates everyone instead;
- ``state()`` is SMAC's global state.

``parallel_env(scenario=NAME, phase=PHASE)`` draws episodes from one phase of a ccoma scenario
instead of a map's own (default: the scenario's first phase). Any other keyword is SMAC's
(``StarCraft2Env``'s), e.g. ``obs_last_action=True`` or ``compile=True``. ``env(...)`` is the same
as an AEC environment. Needs the ``pettingzoo`` extra (``pip install -e '.[pettingzoo]'``).
"""
from __future__ import annotations

import functools

import numpy as np
from gymnasium import spaces
from pettingzoo.utils.env import ParallelEnv

from ccoma.smac.env import StarCraft2Env


def parallel_env(map_name: str | None = None, scenario: str | None = None, phase: str | None = None,
                 max_cycles: int | None = None, **smac_kwargs) -> "SmacParallelEnv":
    """A PettingZoo ``ParallelEnv`` on a map (SMAC's name or a map file) or a ccoma scenario phase."""
    from ccoma.errors import CcomaError

    if map_name and scenario:
        raise CcomaError("parallel_env: give either map_name or scenario, not both")
    if phase and not scenario:
        raise CcomaError("parallel_env: phase needs scenario")
    if scenario:
        from ccoma.scenarios import load_scenario
        from ccoma.smac.env.starcraft2 import random_seed

        scn = load_scenario(scenario)
        seed = smac_kwargs.pop("seed", None)
        seed = random_seed() if seed is None else int(seed)
        source = scn.phase_source(phase or scn.phase_names[0], seed=seed)
        env = StarCraft2Env(map_name=scn.map.path, seed=seed, source=source, **smac_kwargs)
    else:
        env = StarCraft2Env(map_name=map_name or "8m", **smac_kwargs)
    return SmacParallelEnv(env, max_cycles)


def env(**kwargs):
    """The AEC form of :func:`parallel_env` (agents act one after another)."""
    from pettingzoo.utils.conversions import parallel_to_aec

    return parallel_to_aec(parallel_env(**kwargs))


class SmacParallelEnv(ParallelEnv):
    """A ``ParallelEnv`` over one :class:`~ccoma.smac.env.StarCraft2Env`."""

    metadata = {"name": "ccoma_smac_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, smac_env: StarCraft2Env, max_cycles: int | None = None):
        self.env = smac_env
        self.max_cycles = max_cycles or smac_env.episode_limit
        smac_env.reset()  # the first episode's roster names the agents
        sim = smac_env._env
        types = [sim.unit_types[t] for t in sim.battle.types[0, : smac_env.n_agents].tolist()]
        counts: dict[str, int] = {}
        self.possible_agents = []
        for t in types:
            self.possible_agents.append(f"{t}_{counts.get(t, 0)}")
            counts[t] = counts.get(t, 0) + 1
        self._index = {a: i for i, a in enumerate(self.possible_agents)}
        self.agents = []
        n = smac_env.n_actions - 1
        self._action_spaces = {a: spaces.Discrete(n) for a in self.possible_agents}
        self._observation_spaces = {a: spaces.Dict({
            "observation": spaces.Box(-1.0, 1.0, (smac_env.get_obs_size(),), np.float32),
            "action_mask": spaces.Box(0, 1, (n,), np.int8)}) for a in self.possible_agents}
        self.state_space = spaces.Box(-np.inf, np.inf, (smac_env.get_state_size(),), np.float32)
        self._frames = 0

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent):
        return self._observation_spaces[agent]

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent):
        return self._action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None):
        """Start an episode; ``seed`` reseeds the environment (and so every episode after it)."""
        if seed is not None:
            self.env.reseed(seed)
        self.env.reset()
        self.agents = self.possible_agents[:]
        self._frames = 0
        return self._observe(self.agents), {a: {} for a in self.agents}

    def _observe(self, agents: list[str]) -> dict:
        obs = self.env.get_obs()
        masks = np.asarray(self.env.get_avail_actions(), dtype=np.int8)[:, 1:]      # [N, A-1]
        return {a: {"observation": obs[self._index[a]], "action_mask": masks[self._index[a]]} for a in agents}

    def step(self, actions: dict):
        """One team step; agents missing from ``actions`` (or given None) stop (the dead: no-op)."""
        alive_before = self.agents
        acts = [0] * self.env.n_agents
        avail = self.env.get_avail_actions()
        for a in alive_before:
            i = self._index[a]
            act = actions.get(a)
            acts[i] = 1 if act is None else int(act) + 1
            if avail[i][0]:           # dead this step: only the no-op is possible
                acts[i] = 0
        timeouts = self.env.timeouts
        reward, ended, info = self.env.step(acts)
        self._frames += 1
        timed_out = self.env.timeouts > timeouts or (not ended and self._frames >= self.max_cycles)
        alive = self.env._env.battle.alive[0, : self.env.n_agents].tolist()
        terminations = {a: (ended and not timed_out) or not alive[self._index[a]] for a in alive_before}
        truncations = {a: timed_out and not terminations[a] for a in alive_before}
        obs = self._observe(alive_before)
        self.agents = [a for a in alive_before if not (terminations[a] or truncations[a])]
        if timed_out and not ended:  # max_cycles below the episode limit: the episode is over here
            self.env._done = True
        return (obs, {a: reward for a in alive_before}, terminations, truncations,
                {a: dict(info) for a in alive_before})

    def state(self) -> np.ndarray:
        return self.env.get_state()

    def render(self):
        return self.env.render()

    def close(self):
        self.env.close()
