"""Greedy evaluation during deployment: one row of the performance matrix per evaluation point.

Each row plays ``episodes`` greedy episodes on every deployment phase's own distribution, in
environments freshly seeded from the job's ``matrix`` stream, so every method of a seed meets the same
episodes. Evaluation never shifts the training streams (torch's random state is restored).

A greedy evaluation on the simulator is a pure function of the policy's weights and the episodes it
is dealt (the evaluation env is reseeded for each use and the simulator is deterministic), so a job
keeps an :class:`EvalCache`: a frozen deployment's performance-matrix rows repeat its first row,
and a frozen-explore deployment's rows and test points repeat the frozen deployment's (the same
trained weights, the same episodes). Those are looked up instead of played again; the numbers are
the ones playing would give. StarCraft II games are not bit-for-bit repeatable, so the sc2 backend
plays every evaluation.
"""
from __future__ import annotations

import hashlib

import torch

from ccoma.job.envs import EnvPool
from ccoma.job.state import StageState
from ccoma.seeds import seed_for

# environments stepped together by one evaluation (more episodes take several rounds). Budgets that
# compile the simulator compile these too: a job evaluates ~100-1000 times, and at 32 environments
# (the quick and paper budgets' training size) the compiled step is inductor's cached graph.
EVAL_ENVS = 32   # a performance-matrix phase
TEST_ENVS = 64   # a test point


def policy_digest(learner) -> bytes:
    """A digest of every network's weights and buffers: equal digests act the same."""
    h = hashlib.blake2b(digest_size=16)
    for name, net in sorted(learner.networks().items()):
        for key, value in net.state_dict().items():
            h.update(f"{name}.{key}:{value.dtype}:{tuple(value.shape)}".encode())
            h.update(value.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.digest()


class EvalCache:
    """Greedy evaluation results keyed by what was played and the policy's digest (``policy_digest``)."""

    def __init__(self):
        self._stats: dict[tuple, dict] = {}
        self.hits = self.misses = 0

    def play(self, key: tuple, run) -> dict:
        """``run()``'s stats, or the stats of an earlier call with this key."""
        if key in self._stats:
            self.hits += 1
            return self._stats[key]
        self.misses += 1
        stats = self._stats[key] = run()
        return stats


def _player(cache: EvalCache | None, learner):
    """``play(key, run)``: through ``cache`` under the learner's current weights (hashed once for all
    the evaluations of one call), or plainly without a cache."""
    if cache is None:
        return lambda key, run: run()
    digest = policy_digest(learner)
    return lambda key, run: cache.play(key + (digest,), run)


def matrix_row(spec, scenario, learner, state: StageState, episodes: int, envs: EnvPool,
               cache: EvalCache | None = None) -> None:
    """Append a row {"step", "win_rate": {phase: v}, "return": {...}} and its metric points, played in
    ``envs``, the job's pool of evaluation environments (or looked up in ``cache``)."""
    from ccoma.data.rollout import evaluate

    seed = seed_for(spec.seed, "matrix")
    row = {"step": state.t, "win_rate": {}, "return": {}}
    rng = torch.get_rng_state()
    play = _player(cache, learner)
    for phase in scenario.deploy_phases:
        def run():
            env = envs.get(scenario.phase_source(phase, seed=seed), min(episodes, EVAL_ENVS), seed,
                           compile=spec.budget.compile)
            return evaluate(env, learner, episodes)

        stats = play(("matrix", phase, seed, episodes), run)
        row["win_rate"][phase] = float(stats["won"].float().mean()) if stats["won"].numel() else 0.0
        row["return"][phase] = float(stats["return"].mean()) if stats["return"].numel() else 0.0
        state.points += [(f"eval/{phase}/win_rate", row["win_rate"][phase], state.t),
                         (f"eval/{phase}/return", row["return"][phase], state.t)]
    torch.set_rng_state(rng)
    state.evals.append(row)


def test_point(spec, scenario, learner, state: StageState, episodes: int, envs: EnvPool,
               cache: EvalCache | None = None, kind: str = "deploy") -> None:
    """One point of the greedy test curve (the headline metric, as pymarl's test win rate).

    ``episodes`` greedy episodes from the ``kind`` stage's distribution (``deploy``: the deployment's,
    the headline; ``train``: training's, the learning curve) at the current step, one per environment.
    The worlds depend only on the run seed and the point's index, never on the method or its learning,
    so every method of a seed is tested on the same episodes. The global random state is put back
    afterwards, so a test point changes nothing the stage goes on to do.
    """
    from ccoma.data.rollout import evaluate

    index = len(state.tests["steps"])
    seed = seed_for(spec.seed, "test" if kind == "deploy" else f"{kind}_test") * 1000 + index

    def run():
        source = scenario.source(kind, seed=seed)
        source.set_step(state.t)
        env = envs.get(source, min(episodes, TEST_ENVS), seed, compile=spec.budget.compile)
        return evaluate(env, learner, episodes)

    rng = torch.get_rng_state()
    stats = _player(cache, learner)(("test", seed, state.t, episodes), run)
    torch.set_rng_state(rng)
    win = float(stats["won"].float().mean()) if stats["won"].numel() else 0.0
    ret = float(stats["return"].mean()) if stats["return"].numel() else 0.0
    state.tests["steps"].append(state.t)
    state.tests["win_rate"].append(win)
    state.tests["return"].append(ret)
    state.points += [(f"{kind}/test/win_rate", win, state.t), (f"{kind}/test/return", ret, state.t)]
