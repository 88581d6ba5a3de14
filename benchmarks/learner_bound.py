"""How much faster could one job be? A lower bound on each learner update's time on this CPU.

    python benchmarks/learner_bound.py                      # coma, qmix, vdn on 2s3z, one thread
    python benchmarks/learner_bound.py --algos qmix --reps 20 --out bound.json

For one update of each learner, on a batch collected the way the harness collects it (2s3z, 32
environments, the paper budget's batch: 32 sampled episodes for QMIX/VDN, the 8 newest for COMA),
this measures on one torch thread:

- the update's time (min over ``--reps`` repeats, subnormals flushed as ``Rollout.run`` does);
- its floating-point work (``torch.utils.flop_counter``: the matrix products, forward and backward)
  and the rate it runs at;
- the machine's matrix-product rate: a large square ``mm`` (the best this core does) and products
  of the shapes the update uses (the GRU step's [160, 64] x [64, 192]);
- how many ATen operators the update dispatches, and what a trivial operator costs (a 40 x 64
  ``add``): the per-operator floor that no arithmetic saving removes.

A bound on the update is then ``flop / peak + operators x floor``: what the same computation would
cost if every product ran at the large-``mm`` rate and every other operator cost only dispatch. The
job's bound adds the measured acting + simulator time per env step (compiled, 32 environments) and
divides 10K env steps by it; printed against the job rate measured the ordinary way, it says the
largest speed-up any implementation of the same computation could reach on this core.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _best(fn, reps: int) -> float:
    """Min wall time of ``fn()`` over ``reps`` calls (after one warm call), seconds."""
    fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def mm_rate(m: int, k: int, n: int, reps: int = 20) -> float:
    """GFLOP/s of a float32 [m, k] x [k, n] product on this thread (the product repeated to ~10 ms)."""
    import torch

    a, b = torch.randn(m, k), torch.randn(k, n)
    inner = max(1, int(2e7 // (2 * m * k * n)))

    def go():
        for _ in range(inner):
            torch.mm(a, b)

    return 2 * m * k * n * inner / _best(go, reps) / 1e9


def op_floor(reps: int = 20) -> float:
    """Seconds per trivial ATen operator (an out-of-place add of two 40 x 64 tensors)."""
    import torch

    a, b = torch.randn(40, 64), torch.randn(40, 64)

    def go():
        for _ in range(1000):
            torch.add(a, b)

    return _best(go, reps) / 1000


def count_ops(fn) -> int:
    """ATen operators dispatched by ``fn()`` (every call that reaches the Python dispatch mode)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += 1
            return func(*args, **(kwargs or {}))

    with Count():
        fn()
    return Count.n


def measure(algo: str, args) -> dict:
    import torch

    from ccoma.algos import registry
    from ccoma.algos.base import flushed_denormals
    from ccoma.data.buffer import buffer_for
    from ccoma.data.rollout import Rollout
    from ccoma.sim.env import SimEnv
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(args.seed)
    env = SimEnv.from_map(args.map, n_envs=32, seed=args.seed, compile=True)
    learner = registry.make(algo, env.get_env_info(), "cpu")
    buf = buffer_for(learner, env.n_agents, env.episode_limit, 5000, 32, "cpu")
    rollout = Rollout(env, learner, buf)
    rollout.run(2_000, learn=False)                   # compile, warm
    t0, cpu0 = rollout.t_env, time.process_time()
    stats = rollout.run(args.collect, learn=False)    # acting + simulator + buffer writes, no updates
    act_cpu = (time.process_time() - cpu0) / (rollout.t_env - t0)
    episodes = int(stats["won"].numel())
    cfg = learner.config
    on_policy = learner.on_policy
    batch = buf.latest(cfg.batch_size) if on_policy else buf.sample(cfg.batch_size)
    # updates per env step: one per batch_size new episodes (COMA, on-policy) or per episodes_per_update
    per_update = cfg.batch_size if on_policy else cfg.episodes_per_update
    updates_per_step = episodes / (rollout.t_env - t0) / per_update

    def update():
        with flushed_denormals():
            learner.train_step(batch, rollout.t_env)

    with FlopCounterMode(display=False) as fc:
        update()
    flop = fc.get_total_flops()
    ops = count_ops(update)
    t_update = _best(update, args.reps)
    return {"algo": algo, "batch_episodes": int(batch["filled"].shape[0]), "slots": int(batch["filled"].shape[1]),
            "update_ms": t_update * 1e3, "gflop": flop / 1e9, "gflops": flop / t_update / 1e9, "ops": ops,
            "act_us_per_step": act_cpu * 1e6, "updates_per_10k": updates_per_step * 1e4}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algos", default="coma,qmix,vdn")
    p.add_argument("--map", default="2s3z")
    p.add_argument("--collect", type=int, default=20_000, help="env steps collected (acting timed) before the update")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="")
    args = p.parse_args(argv)
    import os
    import platform

    import torch

    torch.set_num_threads(1)
    isa = torch.backends.cpu.get_cpu_capability()
    peak = mm_rate(1024, 1024, 1024)
    gru = mm_rate(160, 64, 192, reps=50)
    floor = op_floor()
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, capability {isa}, 1 thread, "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"mm 1024^3: {peak:.1f} GFLOP/s; mm [160,64]x[64,192] (a GRU step): {gru:.1f} GFLOP/s; "
          f"trivial operator: {floor * 1e6:.2f} us")
    rows = []
    hdr = (f"{'algo':5} {'batch':>9} {'update ms':>9} {'GFLOP':>6} {'GFLOP/s':>7} {'ops':>6} "
           f"{'bound ms':>8} {'upd x':>6} {'job/s now':>9} {'job/s bound':>11} {'job x':>6}")
    print(hdr)
    for algo in args.algos.split(","):
        r = measure(algo, args)
        bound = r["gflop"] / peak + r["ops"] * floor            # seconds
        per_10k_now = r["act_us_per_step"] * 1e-2 + r["updates_per_10k"] * r["update_ms"] / 1e3
        per_10k_bound = r["act_us_per_step"] * 1e-2 + r["updates_per_10k"] * bound
        r.update(peak_gflops=peak, gru_step_gflops=gru, op_floor_us=floor * 1e6, bound_ms=bound * 1e3,
                 job_rate_now=1e4 / per_10k_now, job_rate_bound=1e4 / per_10k_bound, isa=isa)
        rows.append(r)
        print(f"{algo:5} {r['batch_episodes']:>3}x{r['slots']:<5} {r['update_ms']:>9.1f} {r['gflop']:>6.2f} "
              f"{r['gflops']:>7.1f} {r['ops']:>6} {bound * 1e3:>8.1f} {r['update_ms'] / 1e3 / bound:>5.1f}x "
              f"{r['job_rate_now']:>9,.0f} {r['job_rate_bound']:>11,.0f} {per_10k_now / per_10k_bound:>5.2f}x",
              flush=True)
    print("bound = GFLOP at the 1024^3 mm rate + operators x trivial-operator time; job/s = env steps per CPU-second "
          "of acting + simulator (measured) + updates (measured / bound)")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
