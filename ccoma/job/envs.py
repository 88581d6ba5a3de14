"""Building the environments a job steps (training, deployment, evaluation, pictures) on the job's
backend (``ccoma.envs.make``: the built-in simulator or StarCraft II), device and settings."""
from __future__ import annotations


def make_env(spec, scenario, source, n_envs: int, seed: int, compile: bool | None = None):
    from ccoma.envs import backend_of, make

    return make(backend_of(spec.backend), scenario.map, n_envs, seed, spec.device, source=source, config=spec.sim,
                compile=spec.budget.compile if compile is None else compile)
