"""Building the environments a job steps (training, deployment, evaluation, pictures) on the job's
backend (``ccoma.envs.make``: the built-in simulator or StarCraft II), device and settings."""
from __future__ import annotations


def make_env(spec, scenario, source, n_envs: int, seed: int, compile: bool | None = None):
    from ccoma.envs import backend_of, make

    return make(backend_of(spec.backend), scenario.map, n_envs, seed, spec.device, source=source, config=spec.sim,
                compile=spec.budget.compile if compile is None else compile)


# Simulator environments that finished jobs handed back, for the next job of this process (a pool
# worker runs several): a compiled step costs its Dynamo trace and inductor's cache load again in
# every new environment (~2.4 s each, two per job), a reseeded one deals exactly what a new one would.
_IDLE: dict[tuple, list] = {}


def _idle_key(spec, scenario, key: tuple) -> tuple | None:
    """What makes two jobs' environments interchangeable (the map's every field, the scenario's unit
    vocabulary and team sizes, the simulator's settings, device, size, compilation); None for
    backends whose envs end with the job (StarCraft II's game processes)."""
    from ccoma.envs import backend_of

    if backend_of(spec.backend) != "sim":
        return None
    return (repr(scenario.map), tuple(scenario.unit_types), scenario.n_agents, scenario.n_enemies,
            repr(sorted((spec.sim or {}).items())), str(spec.device)) + key


class EnvPool:
    """The job's short-lived environments (the probe, greedy evaluation, pictures, Fisher samples), one
    per batch size (and compile flag), kept for the job's life and reseeded for each use.

    A reseeded environment deals exactly the episodes a new one of that seed and source would (the
    env contract's ``reseed``), so results do not depend on the pool. On StarCraft II it saves
    launching B game processes at every evaluation point; on the simulator, rebuilding the env (and,
    for a compiled one, compiling its step again).
    """

    def __init__(self, spec, scenario):
        self.spec, self.scenario = spec, scenario
        self._envs: dict[tuple[int, bool], object] = {}

    def get(self, source, n_envs: int, seed: int, compile: bool = False):
        """The pool's env of ``n_envs`` environments, reseeded to ``seed`` and ``source``. ``compile``:
        its step compiled, for the evaluations run many times in a job (one-off uses stay eager)."""
        key = (n_envs, bool(compile))
        env = self._envs.get(key)
        if env is None:
            env = self._reuse(key, seed, source)
            if env is None:
                env = make_env(self.spec, self.scenario, source, n_envs, seed, compile=bool(compile))
            self._envs[key] = env
        else:
            env.reseed(seed, source)
        return env

    def _reuse(self, key: tuple, seed: int, source):
        """An environment an earlier job of this process handed back, reseeded; None if there is none."""
        from ccoma.errors import ConfigError

        idle = _IDLE.get(_idle_key(self.spec, self.scenario, key)) or []
        while idle:
            env = idle.pop()
            try:
                env.reseed(seed, source)
                return env
            except ConfigError:  # another observation layout after all: not interchangeable
                continue
        return None

    def close(self) -> None:
        """Hand the simulator's environments to the next job of this process; end the others."""
        for key, env in self._envs.items():
            idle = _idle_key(self.spec, self.scenario, key)
            if idle is None:
                getattr(env, "close", lambda: None)()  # sc2: end the game processes
            else:
                _IDLE.setdefault(idle, []).append(env)
        self._envs.clear()
