"""A job's training is the benchmarks' loop: ``Rollout.run`` over the scenario's training episodes.

``benchmarks/learn_static.py`` and ``learn_source.py`` show learning with a bare loop: one environment,
the method's default learner, ``buffer_for``'s data regime, ``Rollout.run``. A job trains through
``ccoma.job`` instead: chunks, metric points, greedy test points, checkpoints. Those must not change
what it learns (the last round's COMA learned in the benchmark and ran off-policy in the harness, whose
buffer was built differently). So: with its checkpoint barrier only at the end of training, a job's
trained weights equal, bit for bit, the bare loop's on the same seeds (``ccoma.seeds``). Its chunks need
not end on a batched step: the job's step counter is the rollout's, so it takes the same steps and
reads the same exploration schedule.

With several barriers, the job is the bare loop with every environment reset where the job's barriers
are (``Rollout.reset``), and nothing else: saving the checkpoint in the background, flushing metric
points and reading the random state leave training alone. (Session 37 checked the same at the paper
budget: 1M COMA steps with 20 barriers, the weights of two seeds equal bit for bit.)
"""
from __future__ import annotations

import os

import pytest
import torch

STEPS = 3_000   # 10 chunks of 300 steps, 37.5 batched steps of 8 environments each


def _job(tmp_path, algo: str, seed: int, checkpoints: int = 1):
    from ccoma import checkpoint
    from ccoma.experiment import single
    from ccoma.run_config import resolve

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        # test points every chunk: they too must leave training alone
        cfg = resolve("2s3z", "smoke", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", report=False,
                      run_dir=str(tmp_path / "runs"), train_steps=STEPS,
                      overrides={"budget": {"checkpoints": checkpoints, "train_test_points": 10}})
        result = single(cfg, algo, seed, "train", echo=lambda *_: None)
    finally:
        os.chdir(cwd)
    return cfg, checkpoint.load(result["checkpoint"])["learner"]


def _loop(cfg, algo: str, seed: int, resets: bool = False):
    """The bare loop on the job's seeds; ``resets``: every environment reset where the job's barriers are."""
    from ccoma.algos import fused_gru, registry
    from ccoma.data.buffer import buffer_for
    from ccoma.data.rollout import Rollout
    from ccoma.envs import make
    from ccoma.job.runner import barrier_ends
    from ccoma.scenarios import load_scenario
    from ccoma.seeds import seed_for

    b = cfg.budget
    torch.manual_seed(seed_for(seed, "torch"))
    scenario = load_scenario(cfg.scenario).rescaled(b.train_steps, b.deploy_steps)
    learner = registry.make(algo, make("sim", scenario.map, 1, seed, source=scenario.source("train", seed=seed))
                            .get_env_info())
    source = scenario.source("train", seed=seed)
    env = make("sim", scenario.map, b.n_envs, seed_for(seed, "train_env"), source=source)
    rollout = Rollout(env, learner, buffer_for(learner, env.n_agents, env.episode_limit, b.buffer_size, b.n_envs, "cpu"))
    with fused_gru.use_fused(cfg.fused_gru):     # the job's unroll (RunConfig.fused_gru: on by default)
        if not resets:
            rollout.run(b.train_steps)
        else:                                    # where ccoma.job.runner puts its barriers
            for end in barrier_ends(b.train_steps, b):
                rollout.run(max(0, end - rollout.t_env))
                source.set_step(end)
                rollout.reset()
    return learner.state_dict(), learner.train_steps


@pytest.mark.parametrize("algo", ["qmix", "coma"])
def test_a_jobs_training_is_the_bare_loop_bit_for_bit(tmp_path, algo):
    from weights import different_tensors

    threads = torch.get_num_threads()
    try:
        cfg, job = _job(tmp_path, algo, seed=1)
        torch.set_num_threads(1)                  # as a job runs
        loop, updates = _loop(cfg, algo, seed=1)
    finally:
        torch.set_num_threads(threads)
    assert cfg.budget.train_steps // cfg.budget.log_points % cfg.budget.n_envs != 0   # chunks end between steps
    assert updates >= 2 and job["counters"] == loop["counters"]
    different = different_tensors(job, loop)
    assert not different, different


@pytest.mark.parametrize("algo", ["qmix", "coma"])
def test_a_job_with_barriers_is_the_bare_loop_with_the_same_resets(tmp_path, algo):
    """Five barriers in ten chunks: the job equals the loop that resets where they are, and differs from
    the loop that does not (so the resets are what the barriers change, and the check can fail)."""
    from weights import different_tensors

    from ccoma.job.runner import barrier_ends

    threads = torch.get_num_threads()
    try:
        cfg, job = _job(tmp_path, algo, seed=1, checkpoints=5)
        torch.set_num_threads(1)
        reset, _ = _loop(cfg, algo, seed=1, resets=True)
        plain, _ = _loop(cfg, algo, seed=1)
    finally:
        torch.set_num_threads(threads)
    assert len(barrier_ends(cfg.budget.train_steps, cfg.budget)) == 5
    different = different_tensors(job, reset)
    assert not different, different
    assert different_tensors(job, plain)
