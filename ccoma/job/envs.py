"""Building the environments a job steps: training, deployment, evaluation, pictures."""
from __future__ import annotations


def make_env(spec, scenario, source, n_envs: int, seed: int, compile: bool | None = None):
    """A batched environment on the job's backend, device and simulator settings."""
    from ccoma.config import build
    from ccoma.sim.engine import SimConfig
    from ccoma.sim.env import SimEnv

    cfg = build(SimConfig, spec.sim, "sim")
    return SimEnv(scenario.map, n_envs, source=source, config=cfg, device=spec.device, seed=seed,
                  compile=spec.budget.compile if compile is None else compile)
