"""Greedy evaluation during deployment: one row of the performance matrix per evaluation point.

Each row plays ``episodes`` greedy episodes on every deployment phase's own distribution, in
environments freshly seeded from the job's ``matrix`` stream, so every method of a seed meets the same
episodes. Evaluation never shifts the training streams (torch's random state is restored).
"""
from __future__ import annotations

import torch

from ccoma.job.envs import EnvPool
from ccoma.job.state import StageState
from ccoma.seeds import seed_for

# environments stepped together by one evaluation (more episodes take several rounds). Budgets that
# compile the simulator compile these too: a job evaluates ~100-1000 times, and at 32 environments
# (the quick and paper budgets' training size) the compiled step is inductor's cached graph.
EVAL_ENVS = 32   # a performance-matrix phase
TEST_ENVS = 64   # a test point


def matrix_row(spec, scenario, learner, state: StageState, episodes: int, envs: EnvPool) -> None:
    """Append a row {"step", "win_rate": {phase: v}, "return": {...}} and its metric points, played in
    ``envs``, the job's pool of evaluation environments."""
    from ccoma.data.rollout import evaluate

    seed = seed_for(spec.seed, "matrix")
    row = {"step": state.t, "win_rate": {}, "return": {}}
    rng = torch.get_rng_state()
    for phase in scenario.deploy_phases:
        env = envs.get(scenario.phase_source(phase, seed=seed), min(episodes, EVAL_ENVS), seed,
                       compile=spec.budget.compile)
        stats = evaluate(env, learner, episodes)
        row["win_rate"][phase] = float(stats["won"].float().mean()) if stats["won"].numel() else 0.0
        row["return"][phase] = float(stats["return"].mean()) if stats["return"].numel() else 0.0
        state.points += [(f"eval/{phase}/win_rate", row["win_rate"][phase], state.t),
                         (f"eval/{phase}/return", row["return"][phase], state.t)]
    torch.set_rng_state(rng)
    state.evals.append(row)


def test_point(spec, scenario, learner, state: StageState, episodes: int, envs: EnvPool) -> None:
    """One point of the greedy test curve (the headline metric, as pymarl's test win rate).

    ``episodes`` greedy episodes from the deployment's distribution at the current step, one per
    environment. The worlds depend only on the run seed and the point's index, never on the method
    or its learning, so every method of a seed is tested on the same episodes.
    """
    from ccoma.data.rollout import evaluate

    index = len(state.tests["steps"])
    seed = seed_for(spec.seed, "test") * 1000 + index
    source = scenario.source("deploy", seed=seed)
    source.set_step(state.t)
    env = envs.get(source, min(episodes, TEST_ENVS), seed, compile=spec.budget.compile)
    rng = torch.get_rng_state()
    stats = evaluate(env, learner, episodes)
    torch.set_rng_state(rng)
    win = float(stats["won"].float().mean()) if stats["won"].numel() else 0.0
    ret = float(stats["return"].mean()) if stats["return"].numel() else 0.0
    state.tests["steps"].append(state.t)
    state.tests["win_rate"].append(win)
    state.tests["return"].append(ret)
    state.points += [("deploy/test/win_rate", win, state.t), ("deploy/test/return", ret, state.t)]
