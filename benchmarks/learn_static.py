"""Learning on a static map: greedy win rate vs env steps and wall-clock, and training throughput.

    python benchmarks/learn_static.py                                  # every method, seeds 0,1,2, 1M steps
    python benchmarks/learn_static.py --algos qmix --seeds 0 --steps 200000 --out results/qmix.csv
    python benchmarks/learn_static.py --algos qmix,vdn --n-envs 64 --episodes-per-update 16
    python benchmarks/learn_static.py --map 25m --algos mfq --half-buffer --buffer 500
    python benchmarks/learn_static.py --algos qmix --seeds 0 --threads 1 --compile --fused-gru

Each (method, seed) trains on ``SimEnv.from_map(MAP, n_envs=B)`` with the method's default config
(pymarl / C-COMA paper hyperparameters) and is evaluated greedily every ``--eval-every`` env steps on
a separate env (``--eval-episodes`` episodes, the first ones of each env). Env steps are counted
pymarl's way: one agent decision of one environment (a batched step of B envs adds B).

Throughput = env steps per second of training *including* learner updates (evaluation excluded).
The project's targets: QMIX greedy win rate >= 0.8 within 1M steps (median of 3 seeds), and
throughput >= ~1700 steps/s so 6M steps of one method/seed take under an hour on 2 CPU cores.
Rows go to a CSV as they are produced; a summary table is printed at the end.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import torch

FIELDS = ["algo", "seed", "map", "t_env", "wall_s", "train_s", "steps_per_s", "episodes", "updates",
          "eval_win_rate", "eval_return", "train_win_rate", "train_return", "loss"]


def run_one(algo: str, seed: int, args, emit) -> None:
    from ccoma.algos import registry
    from ccoma.data.buffer import buffer_for
    from ccoma.data.rollout import Rollout, evaluate
    from ccoma.sim.env import SimEnv

    torch.manual_seed(seed)
    env = SimEnv.from_map(args.map, n_envs=args.n_envs, seed=seed, device=args.device, compile=args.compile)
    eval_env = SimEnv.from_map(args.map, n_envs=min(args.eval_episodes, 32), seed=10_000 + seed, device=args.device)
    overrides = dict(args.overrides)
    if args.episodes_per_update:
        overrides["episodes_per_update"] = args.episodes_per_update
    learner = registry.make(algo, env.get_env_info(), args.device, overrides)
    # the harness's buffer (ccoma.job builds it the same way): on-policy learners (COMA) train on the
    # newest episodes only, replay learners sample from --buffer episodes
    buf = buffer_for(learner, env.n_agents, env.episode_limit, args.buffer, args.n_envs, args.device,
                     float_dtype=torch.float16 if args.half_buffer else None)
    rollout = Rollout(env, learner, buf)
    losses, train_s, start = [], 0.0, time.perf_counter()
    key = "loss" if algo != "coma" else "critic_loss"
    while rollout.t_env < args.steps:
        t0 = time.perf_counter()
        stats = rollout.run(min(args.eval_every, args.steps - rollout.t_env),
                            on_train=lambda info, t: losses.append(info[key]))
        train_s += time.perf_counter() - t0
        ev = evaluate(eval_env, learner, args.eval_episodes)
        row = {"algo": algo, "seed": seed, "map": args.map, "t_env": rollout.t_env,
               "wall_s": round(time.perf_counter() - start, 1), "train_s": round(train_s, 1),
               "steps_per_s": round(rollout.t_env / train_s), "episodes": rollout.episodes,
               "updates": learner.train_steps,
               "eval_win_rate": round(float(ev["won"].float().mean()), 3),
               "eval_return": round(float(ev["return"].mean()), 3),
               "train_win_rate": round(float(stats["won"].float().mean()), 3) if stats["won"].numel() else "",
               "train_return": round(float(stats["return"].mean()), 3) if stats["won"].numel() else "",
               "loss": round(sum(losses[-50:]) / max(len(losses[-50:]), 1), 5)}
        emit(row)


def _interval_rates(rows: list[dict]) -> float:
    prev_t, prev_s, rates = 0, 0.0, []
    for r in rows:
        if r["train_s"] > prev_s:
            rates.append((r["t_env"] - prev_t) / (r["train_s"] - prev_s))
        prev_t, prev_s = r["t_env"], r["train_s"]
    return statistics.median(rates) if rates else 0.0


def summarise(rows: list[dict], target: float) -> None:
    print(f"\n{'algo':6} {'seeds':>5} {'final win (median)':>18} {'best win (median)':>17} "
          f"{'steps to ' + str(target) + ' (median)':>22} {'steps/s':>8} {'6M steps (min)':>14}")
    print("(steps/s: env steps per second of training incl. updates, median over eval intervals)")
    for algo in dict.fromkeys(r["algo"] for r in rows):
        per_seed = {}
        for r in rows:
            if r["algo"] == algo:
                per_seed.setdefault(r["seed"], []).append(r)
        finals = [rs[-1]["eval_win_rate"] for rs in per_seed.values()]
        bests = [max(r["eval_win_rate"] for r in rs) for rs in per_seed.values()]
        reach = [next((r["t_env"] for r in rs if r["eval_win_rate"] >= target), None) for rs in per_seed.values()]
        reached = sorted(x if x is not None else float("inf") for x in reach)
        med_reach = reached[len(reached) // 2]
        # median over eval intervals: robust to other processes stealing the CPU for a while
        sps = statistics.median(_interval_rates(rs) for rs in per_seed.values())
        print(f"{algo:6} {len(per_seed):>5} {statistics.median(finals):>18.3f} {statistics.median(bests):>17.3f} "
              f"{(str(med_reach) if med_reach != float('inf') else 'not reached'):>22} {sps:>8.0f} "
              f"{6e6 / sps / 60:>14.1f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--map", default="2s3z")
    p.add_argument("--algos", default="qmix,vdn,iql,coma,mfq")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--n-envs", type=int, default=32)
    p.add_argument("--episodes-per-update", type=int, default=0, help="0: the method's default")
    p.add_argument("--eval-every", type=int, default=50_000)
    p.add_argument("--eval-episodes", type=int, default=32)
    p.add_argument("--win-target", type=float, default=0.8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--buffer", type=int, default=5000, help="replay capacity for replay learners (episodes)")
    p.add_argument("--compile", action="store_true", help="compile the training env's step (as the quick and "
                   "paper budgets do); evaluation stays eager, as in the harness")
    p.add_argument("--fused-gru", action="store_true", help="learner updates unroll the GRU with ccoma's fused C "
                   "loop (RunConfig.fused_gru) instead of torch.gru")
    p.add_argument("--half-buffer", action="store_true", help="store float fields as float16 (half the memory)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field of every method, e.g. --set lr=0.001 (repeatable)")
    p.add_argument("--out", default="benchmarks/results/learn_static.csv")
    args = p.parse_args(argv)
    import yaml

    args.overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    torch.set_num_threads(args.threads)
    if args.fused_gru:
        from ccoma.algos import fused_gru

        fused_gru.set_fused(True)
        print("GRU unroll:", fused_gru.status(), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        def emit(row):
            print(" ".join(f"{k}={row[k]}" for k in FIELDS), flush=True)
            writer.writerow(row)
            fh.flush()
            rows.append(row)

        for algo in args.algos.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                run_one(algo, seed, args, emit)
    summarise(rows, args.win_target)
    print(f"\nrows written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
