"""Where a paper-settings training job's time goes: learner updates, simulator, resets, acting, the rest.

    python benchmarks/job_split.py                     # QMIX, --fused-gru, 100K steps warm-up, 60K timed
    python benchmarks/job_split.py --algo coma --default-gru --steps 30000

One job as ``benchmarks/learn_throughput.py`` runs it (2s3z, 32 compiled environments, the paper
budget's replay of 5,000 episodes, one torch thread, ``Rollout.run``), with wall-clock timers wrapped
around ``learner.train_step``, ``env.step`` (and inside it the compiled step, the eager reset
``_reset_idx``, the episode draws ``_draw`` and the compiled reset ``_reset_fn``) and ``learner.act``.
"other" is the rollout's own bookkeeping (buffer writes, episode ends). Timers, not a profiler: the
figures are the job's unprofiled costs, plus a few microseconds per wrapped call.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algo", default="qmix")
    p.add_argument("--warmup", type=int, default=100_000)
    p.add_argument("--steps", type=int, default=60_000)
    p.add_argument("--default-gru", action="store_true", help="torch.gru instead of --fused-gru's unroll")
    args = p.parse_args(argv)

    import torch

    from ccoma.algos import fused_gru, registry
    from ccoma.allocator import keep_freed_memory
    from ccoma.data.buffer import buffer_for
    from ccoma.data.rollout import Rollout
    from ccoma.sim.env import SimEnv

    keep_freed_memory()   # as a job does
    torch.set_num_threads(1)
    fused_gru.set_fused(not args.default_gru)
    torch.manual_seed(0)
    env = SimEnv.from_map("2s3z", n_envs=32, seed=0, compile=True)
    learner = registry.make(args.algo, env.get_env_info(), "cpu")
    buf = buffer_for(learner, env.n_agents, env.episode_limit, 5000, 32, "cpu")
    rollout = Rollout(env, learner, buf)
    rollout.run(args.warmup)

    spent: dict[str, float] = {}

    def timed(obj, name: str, key: str) -> None:
        f = getattr(obj, name)
        if f is None:
            return
        spent[key] = 0.0

        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                spent[key] += time.perf_counter() - t0
        setattr(obj, name, wrapper)

    for obj, name, key in ((learner, "train_step", "updates"), (env, "step", "env.step"), (learner, "act", "acting"),
                           (env, "_advance_fn", "  compiled step"), (env, "_reset_idx", "  eager reset"),
                           (env, "_draw", "  episode draws"), (env, "_reset_fn", "  compiled reset")):
        timed(obj, name, key)
    n0 = learner.train_steps
    t0 = time.perf_counter()
    rollout.run(args.steps)
    total = time.perf_counter() - t0
    updates = learner.train_steps - n0
    spent["other"] = total - spent["updates"] - spent["env.step"] - spent["acting"]
    print(f"{args.algo} ({'torch.gru' if args.default_gru else '--fused-gru'}), {args.steps} env steps after "
          f"{args.warmup}: {args.steps / total:,.0f} env steps/s, {total:.2f} s, {updates} updates "
          f"({spent['updates'] / max(updates, 1) * 1e3:.1f} ms each)")
    for key, s in spent.items():
        print(f"{key:<18} {s:7.2f} s {100 * s / total:5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
