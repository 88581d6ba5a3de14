"""Env steps per second of SMAC's single-environment view beside the batched simulator at B=1.

    python benchmarks/smac_view.py                  # 2s3z, 5 s per measurement, one torch thread
    python benchmarks/smac_view.py --seconds 2 --map 3m --out r.json

Rows, all on one core with random available actions:
- view, README loop: ``ccoma.smac.env.StarCraft2Env`` driven as SMAC's README does (get_obs, get_state,
  then per agent get_avail_agent_actions and np.random.choice over the available actions), eager
  and with ``compile=True``;
- view, runner loop: the same through the whole-team methods a pymarl-style runner calls
  (get_obs, get_state, get_avail_actions; actions drawn for all agents at once);
- batched: ``SimEnv`` at B=1 (actions drawn as tensors), eager and compiled: the view's floor;
- SMAX: JaxMARL's ``HeuristicEnemySMAX`` at B=1, one jitted step per Python call (needs the ``bench``
  extra; skipped with the reason when jaxmarl does not import).
Each step includes automatic or explicit resets; compilation and warm-up are not timed (printed).
Our rows also give steps per CPU-second of this process (one torch thread): on a busy machine that
is the figure a quiet core would give, while wall-clock rates measure the neighbours too.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sim_throughput import _timed_loop, bench_smax, smax_unavailable  # noqa: E402


def _view_loop(env, rng, per_agent: bool):
    """One env step of a random agent through the view; resets when the episode ends."""
    n = env.n_agents
    state = {"done": True}

    def one_step():
        if state["done"]:
            env.reset()
        env.get_obs()
        env.get_state()
        if per_agent:
            actions = [rng.choice(np.nonzero(env.get_avail_agent_actions(i))[0]) for i in range(n)]
        else:
            avail = np.asarray(env.get_avail_actions())                       # [N, A]
            actions = np.where(avail > 0, rng.random(avail.shape), -1.0).argmax(1)
        state["done"] = env.step(actions)[1]
    return one_step


def _timed(chunk, budget_s: float) -> tuple[float, int, float]:
    """``_timed_loop`` plus this process's CPU seconds over the same window: (wall s, steps, CPU s)."""
    cpu0 = time.process_time()
    secs, steps = _timed_loop(chunk, 100, budget_s)
    return secs, steps, time.process_time() - cpu0


def bench_view(map_name: str, compiled: bool, per_agent: bool, budget_s: float) -> dict:
    from ccoma.smac.env import StarCraft2Env

    t0 = time.perf_counter()
    env = StarCraft2Env(map_name=map_name, seed=0, compile=compiled)
    one_step = _view_loop(env, np.random.default_rng(0), per_agent)
    for _ in range(200):  # compiles on the first step; warm-up crosses a few episode ends
        one_step()
    warm_s = time.perf_counter() - t0

    def chunk():
        for _ in range(100):
            one_step()
    secs, steps, cpu = _timed(chunk, budget_s)
    return {"row": f"view, {'README' if per_agent else 'runner'} loop", "mode": "compiled" if compiled else "eager",
            "steps_per_s": steps / secs, "steps_per_cpu_s": steps / cpu, "timed_steps": steps, "warmup_s": warm_s}


def bench_batched(map_name: str, compiled: bool, budget_s: float) -> dict:
    from ccoma.sim.env import SimEnv

    t0 = time.perf_counter()
    env = SimEnv.from_map(map_name, n_envs=1, seed=0, compile=compiled)
    gen = torch.Generator().manual_seed(0)

    def one_step():
        avail = env.get_avail_actions()                                          # [1, N, A] bool
        env.step(torch.where(avail, torch.rand(avail.shape, generator=gen), -1.0).argmax(-1))
    env.reset()
    for _ in range(200):
        one_step()
    warm_s = time.perf_counter() - t0

    def chunk():
        for _ in range(100):
            one_step()
    secs, steps, cpu = _timed(chunk, budget_s)
    return {"row": "batched SimEnv, B=1", "mode": "compiled" if compiled else "eager", "steps_per_s": steps / secs,
            "steps_per_cpu_s": steps / cpu, "timed_steps": steps, "warmup_s": warm_s}


def table(rows: list[dict], map_name: str, load: float) -> str:
    """The rows with their ratios to the batched simulator at B=1 (same mode) and to SMAX at B=1."""
    batched = {r["mode"]: r["steps_per_s"] for r in rows if r["row"].startswith("batched")}
    smax = next((r["steps_per_s"] for r in rows if r["row"].startswith("SMAX")), None)
    lines = [f"{map_name}, one torch thread, load average before {load:.2f} (figures are ratios within this run)",
             f"{'':28} {'mode':9} {'steps/s':>9} {'/ batched B=1':>14} {'/ SMAX B=1':>11} {'warm-up s':>10} "
             f"{'steps/CPU-s':>12}"]
    for r in rows:
        to_batched = f"{r['steps_per_s'] / batched[r['mode']]:.2f}" if r["mode"] in batched else "-"
        to_smax = f"{r['steps_per_s'] / smax:.2f}" if smax else "-"
        per_cpu = f"{r['steps_per_cpu_s']:,.0f}" if "steps_per_cpu_s" in r else "-"
        lines.append(f"{r['row']:28} {r['mode']:9} {r['steps_per_s']:9,.0f} {to_batched:>14} {to_smax:>11} "
                     f"{r['warmup_s']:10.1f} {per_cpu:>12}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--map", default="2s3z")
    ap.add_argument("--seconds", type=float, default=5.0, help="timed seconds per measurement")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    load = os.getloadavg()
    rows = []
    for compiled in (False, True):
        rows.append(bench_view(args.map, compiled, True, args.seconds))
        rows.append(bench_view(args.map, compiled, False, args.seconds))
        rows.append(bench_batched(args.map, compiled, args.seconds))
    why = smax_unavailable()
    if why is None:
        r = bench_smax(1, args.seconds, "step")
        rows.append({"row": "SMAX 2s3z, B=1", "mode": "jit step", "steps_per_s": r["steps_per_s"],
                     "timed_steps": r["timed_steps"], "warmup_s": r["compile_s"]})
    print(table(rows, args.map, load[0]))
    if why is not None:
        print(f"SMAX skipped: {why}")
    if args.out:
        Path(args.out).write_text(json.dumps({"map": args.map, "load_before": load, "smax": why or "ok",
                                              "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
