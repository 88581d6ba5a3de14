"""The compiled simulator's automatic reset: eager (the finished rows) against compiled (the whole batch).

    python benchmarks/sim_reset.py                        # 2s3z, B = 1, 32, 64, 512, 4096
    python benchmarks/sim_reset.py --map dynamic_5v5 --sizes 32 --rounds 10 --out reset.json

A compiled ``SimEnv`` (``compile=True``) resets its finished battles in one compiled call over the whole
batch (``SimEnv._reset_where``) when it has at most ``COMPILED_RESET_MAX_ENVS`` environments, else
eagerly, row by row (``SimEnv._reset_idx`` and an eager observation of the reset rows). This script
times both on the same environment, at one torch thread, random available actions, alternating the
two arms ``--rounds`` times (``--steps`` steps each, after one warm run each), and prints the median
milliseconds per batched step of each, their ratio, and how many steps had a reset. Each size is forced
through both arms whatever the threshold says, so the threshold itself can be checked.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def measure(map_name: str, n_envs: int, rounds: int, steps: int) -> dict:
    import torch

    from ccoma.algos.networks import random_available
    from ccoma.sim.env import SimEnv

    env = SimEnv.from_map(map_name, n_envs=n_envs, seed=0, compile=True)
    compiled = env._reset_fn or env._compiled(SimEnv._reset_where)   # above the threshold: compiled here
    torch.manual_seed(0)
    env.reset()
    arms = {"eager": None, "compiled": compiled}

    def run(arm: str) -> tuple[float, int]:
        env._reset_fn = arms[arm]
        resets, t0 = 0, time.perf_counter()
        for _ in range(steps):
            out = env.step(random_available(env.get_avail_actions()))
            resets += int((out.terminated | out.truncated).any())
        return (time.perf_counter() - t0) / steps * 1e3, resets

    for arm in arms:   # compiles, warms
        run(arm)
    times = {arm: [] for arm in arms}
    resets = {arm: 0 for arm in arms}
    for _ in range(rounds):
        for arm in arms:
            ms, r = run(arm)
            times[arm].append(ms)
            resets[arm] += r
    med = {arm: statistics.median(t) for arm, t in times.items()}
    return {"map": map_name, "n_envs": n_envs, "steps": steps * rounds, "ms_per_step": med, "runs_ms": times,
            "steps_with_reset": resets, "eager_over_compiled": med["eager"] / med["compiled"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--map", default="2s3z")
    p.add_argument("--sizes", default="1,32,64,512,4096", help="comma-separated batch sizes")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--steps", type=int, default=400, help="batched steps per arm per round")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="")
    args = p.parse_args(argv)

    import torch

    from ccoma.sim.env import COMPILED_RESET_MAX_ENVS

    torch.set_num_threads(args.threads)
    print(f"map {args.map}, {args.threads} thread(s), {args.rounds} alternating rounds of {args.steps} steps; "
          f"ms per batched step (median); the harness uses the compiled reset up to B = {COMPILED_RESET_MAX_ENVS}")
    print(f"{'B':>6} {'eager':>9} {'compiled':>9} {'eager/compiled':>15} {'steps with a reset':>20}")
    results = []
    for b in (int(x) for x in args.sizes.split(",")):
        r = measure(args.map, b, args.rounds, args.steps)
        results.append(r)
        m = r["ms_per_step"]
        print(f"{b:>6} {m['eager']:>9.3f} {m['compiled']:>9.3f} {r['eager_over_compiled']:>14.2f}x "
              f"{r['steps_with_reset']['compiled']:>13} of {r['steps']}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
