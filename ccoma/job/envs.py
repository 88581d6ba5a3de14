"""Building the environments a job steps (training, deployment, evaluation, pictures) on the job's
backend (``ccoma.envs.make``: the built-in simulator or StarCraft II), device and settings."""
from __future__ import annotations


def make_env(spec, scenario, source, n_envs: int, seed: int, compile: bool | None = None):
    from ccoma.envs import backend_of, make

    return make(backend_of(spec.backend), scenario.map, n_envs, seed, spec.device, source=source, config=spec.sim,
                compile=spec.budget.compile if compile is None else compile)


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
            env = self._envs[key] = make_env(self.spec, self.scenario, source, n_envs, seed, compile=bool(compile))
        else:
            env.reseed(seed, source)
        return env

    def close(self) -> None:
        for env in self._envs.values():
            getattr(env, "close", lambda: None)()  # sc2: end the game processes
        self._envs.clear()
