"""Is a finished job's training the bare loop? Replays it and compares the weights bit for bit.

    python benchmarks/job_vs_loop.py RUN_DIR/coma-seed4/checkpoint.pt --algo coma --seed 4
    python benchmarks/job_vs_loop.py CKPT --algo qmix --seed 1 --no-resets     # the loop without resets
    python benchmarks/job_vs_loop.py CKPT --algo coma --seed 1 --scenario 2s3z --budget paper --train-steps 1000000

``tests/job/test_job_is_the_loop.py`` shows it at a smoke budget (3,000 steps, five barriers); this
script shows it at any budget for a job already run with ``ccoma evaluate``: the same scenario, budget,
training steps and seed (``--train-steps`` is the job's, 1M for ``benchmarks/learning_check.py``'s
jobs; the deployment length does not matter). It builds what ``ccoma.job.runner`` builds (the
method's default learner on the job's seeds, the budget's environments compiled as the job's, its
data regime), runs ``Rollout.run`` over the same chunks and, unless ``--no-resets``, resets every
environment where the job's checkpoint barriers are. It then prints how many of the learner's tensors
differ from the checkpoint's trained weights (``trained``) and by how much.

Session 37 used it to settle whether the job's barriers (a reset, a checkpoint written by a
background thread, metric points flushed) change what COMA learns beyond the reset itself: they do
not (docs/throughput.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="a finished job's checkpoint.pt (RUN_DIR/<algo>-seed<S>/checkpoint.pt)")
    p.add_argument("--algo", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--scenario", default="2s3z")
    p.add_argument("--budget", default="paper")
    p.add_argument("--train-steps", type=int, default=1_000_000)
    p.add_argument("--deploy-steps", type=int, default=6400, help="the job's (learning_check.py's default)")
    p.add_argument("--no-resets", action="store_true", help="the loop without the barriers' resets")
    p.add_argument("--no-fused-gru", action="store_true", help="for a job run with --no-fused-gru")
    args = p.parse_args(argv)

    import torch

    from ccoma import checkpoint
    from ccoma.algos import fused_gru, registry
    from ccoma.allocator import keep_freed_memory
    from ccoma.data.buffer import buffer_for
    from ccoma.data.rollout import Rollout
    from ccoma.envs import make
    from ccoma.job.runner import barrier_ends, chunking
    from ccoma.run_config import resolve
    from ccoma.scenarios import load_scenario
    from ccoma.seeds import seed_for

    keep_freed_memory()
    torch.set_num_threads(1)   # as a job runs
    cfg = resolve(args.scenario, args.budget, train_steps=args.train_steps, deploy_steps=args.deploy_steps)
    b, seed = cfg.budget, args.seed
    torch.manual_seed(seed_for(seed, "torch"))
    scenario = load_scenario(cfg.scenario).rescaled(b.train_steps, b.deploy_steps)
    probe = make("sim", scenario.map, 1, seed, source=scenario.source("train", seed=seed))
    learner = registry.make(args.algo, probe.get_env_info())
    source = scenario.source("train", seed=seed)
    env = make("sim", scenario.map, b.n_envs, seed_for(seed, "train_env"), source=source, compile=b.compile)
    rollout = Rollout(env, learner, buffer_for(learner, env.n_agents, env.episode_limit, b.buffer_size, b.n_envs,
                                               "cpu"))
    chunk, n_chunks = chunking(b.train_steps, b)
    barriers = set() if args.no_resets else set(barrier_ends(b.train_steps, b))
    with fused_gru.use_fused(not args.no_fused_gru):
        for i in range(n_chunks):
            source.set_step(min(b.train_steps, i * chunk))   # the chunk's first step, as the job sets it
            end = min(b.train_steps, (i + 1) * chunk)
            rollout.run(max(0, end - rollout.t_env))
            if end in barriers:
                source.set_step(end)
                rollout.reset()

    trained = checkpoint.load(args.checkpoint).get("trained") or {}
    mine = learner.state_dict()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from weights import state_tensors   # the tests' bit-for-bit comparison

    pairs = dict(state_tensors(trained)), dict(state_tensors(mine))
    if not pairs[0] or pairs[0].keys() != pairs[1].keys():
        print(f"{args.checkpoint}: its trained weights are not a {args.algo} learner's", file=sys.stderr)
        return 2
    differ = [k for k in pairs[0] if not torch.equal(pairs[0][k], pairs[1][k])]
    worst = max((float((pairs[0][k].double() - pairs[1][k].double()).abs().max()) for k in differ), default=0.0)
    print(f"{args.algo} seed {seed}, {b.train_steps:,} steps, {'no resets' if args.no_resets else f'{b.checkpoints} barriers'}"
          f", {learner.train_steps} updates: {len(differ)} of {len(pairs[0])} tensors differ from the job's"
          f" (largest difference {worst:.3g})" + (f": {', '.join(differ[:4])}" if differ else " - bit for bit"))
    return 0 if not differ else 1


if __name__ == "__main__":
    sys.exit(main())
