"""Env steps per second *including learning*, this checkout against a baseline commit, as ratios.

    python benchmarks/learn_throughput.py                         # paper budget, COMA/QMIX/VDN, solo + pair
    python benchmarks/learn_throughput.py --budgets quick,paper --windows 3
    python benchmarks/learn_throughput.py --baseline /work/wt/baseline --windows 10   # longer
    python benchmarks/learn_throughput.py --no-baseline --algos qmix --modes solo
    python benchmarks/learn_throughput.py --no-fused-gru          # this checkout with torch.gru (the default is the harness's, fused)
    python benchmarks/learn_throughput.py --interleave --windows 8 --window 30000   # drift-robust ratios
    python benchmarks/learn_throughput.py --device cuda --algos coma,qmix --modes solo   # on a GPU machine

Each measurement is one job the way the harness runs it (``ccoma/run_config.py`` BUDGETS): a 2s3z
``SimEnv`` of ``n_envs`` = 32 environments, compiled when the budget says so, the learner's default
config, and a replay of the budget's size (COMA: its own on-policy buffer of 8 episodes, batch 8),
driven by ``Rollout.run``. After a warm-up (compilation, buffer fill) the job times ``--windows``
windows of ``--window`` env steps and reports the median rate, and its peak resident memory.
``solo`` runs one job alone; ``pair`` runs two identical jobs side by side (each job's rate is
reported; the machine has 2 cores). Every job uses one torch thread.

The code under test is chosen with PYTHONPATH: each job is a subprocess of this script running
``--child`` with PYTHONPATH set to this checkout or to ``--baseline`` (a git worktree of the commit
to compare with), so both are measured in the same run on the same machine and their ratio means
something even on a busy machine.

``--interleave`` takes turns instead: every job of both codes starts at once and they run in
alternation, this checkout's warm-up, then the baseline's, then window by window in rounds (this,
base; base, this; ...), the group not running waiting idle (blocked on a file, no CPU). Each round's
two windows are minutes apart at most, so the machine's drift (tens of percent within minutes on some
VMs) largely cancels in the round's ratio; the median of the per-round ratios is reported beside the
ratio of the median rates. It needs memory for all jobs at once (a paper-budget QMIX job: ~2.1 GB).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALGOS = ("coma", "qmix", "vdn")
# the harness's settings (ccoma/run_config.py BUDGETS) that matter for throughput
BUDGETS = {"quick": {"n_envs": 32, "buffer_size": 1000}, "paper": {"n_envs": 32, "buffer_size": 5000}}


# ------------------------------------------------------------------------------------ one job
def _replay_bytes(buf) -> dict:
    """Bytes of the replay's storage as allocated, and what float32 / float16 float fields would take;
    per field: dtype and bytes."""
    got = sum(v.numel() * v.element_size() for v in buf.data.values())
    f32 = sum(v.numel() * (4 if v.is_floating_point() else v.element_size()) for v in buf.data.values())
    f16 = sum(v.numel() * (2 if v.is_floating_point() else v.element_size()) for v in buf.data.values())
    fields = {k: [str(v.dtype).replace("torch.", ""), v.numel() * v.element_size()] for k, v in buf.data.items()}
    return {"bytes": got, "bytes_f32": f32, "bytes_f16": f16, "fields": fields}


def _barrier(path: str | None, n: int, me: int) -> None:
    """Wait until ``n`` jobs reached this point (so a pair's timed windows overlap)."""
    if not path:
        return
    Path(path, f"ready.{me}").touch()
    deadline = time.time() + 600
    while len(list(Path(path).glob("ready.*"))) < n and time.time() < deadline:
        time.sleep(0.05)


def _await_turn(path: str | None, phase: str, group: str) -> None:
    """``--interleave``: block until the driver gives ``group`` the ``phase`` (a file appears)."""
    if not path:
        return
    go = Path(path, f"go.{phase}.{group}")
    while not go.exists():
        time.sleep(0.02)


def _turn_done(path: str | None, phase: str, job: int) -> None:
    if path:
        Path(path, f"done.{phase}.{job}").touch()


def child(args) -> None:
    import resource

    import torch

    torch.set_num_threads(1)
    try:   # as a harness job does (Job.__init__); a baseline from before ccoma/allocator.py has glibc's defaults
        from ccoma.allocator import keep_freed_memory
    except ImportError:
        pass
    else:
        keep_freed_memory()
    if args.fused_gru:
        from ccoma.algos import fused_gru

        fused_gru.set_fused(True)
    from ccoma.algos import registry
    from ccoma.data.buffer import EpisodeBuffer
    from ccoma.data.rollout import Rollout
    from ccoma.run_config import BUDGETS as HARNESS
    from ccoma.sim.env import SimEnv

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize(args.device)

    budget = HARNESS[args.budget]
    compile_ = budget.compile if args.compile is None else bool(args.compile)
    torch.manual_seed(args.seed)
    turns, group = args.turns, args.group
    _await_turn(turns, "warm", group)
    t0 = time.perf_counter()
    dev = args.device
    cuda = dev.startswith("cuda")
    env = SimEnv.from_map(args.map, n_envs=budget.n_envs, seed=args.seed, compile=compile_, device=dev)
    learner = registry.make(args.algo, env.get_env_info(), dev)
    # the harness's buffer: COMA its own on-policy one, value methods the budget's replay
    try:
        from ccoma.data.buffer import buffer_for
    except ImportError:  # a baseline from before buffer_for: COMA's config named its buffer's size
        size = learner.config.buffer_size if args.algo == "coma" else budget.buffer_size
        buf = EpisodeBuffer(learner.scheme(), env.n_agents, env.episode_limit, size, device=dev)
    else:   # on the job's device, as the harness puts it (ccoma/job/runner.py)
        buf = buffer_for(learner, env.n_agents, env.episode_limit, budget.buffer_size, budget.n_envs, dev)
        size = buf.capacity
    rollout = Rollout(env, learner, buf)
    rollout.run(args.warmup)
    sync()
    warm_s = time.perf_counter() - t0
    _turn_done(turns, "warm", args.job)
    _barrier(args.barrier, args.n_jobs, args.job)
    rates, cpu_rates = [], []
    for w in range(args.windows):
        _await_turn(turns, f"w{w}", group)
        start_t, start, cpu = rollout.t_env, time.perf_counter(), time.process_time()
        rollout.run(args.window)
        sync()
        rates.append((rollout.t_env - start_t) / (time.perf_counter() - start))
        cpu_rates.append((rollout.t_env - start_t) / (time.process_time() - cpu))
        _turn_done(turns, f"w{w}", args.job)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gpu = torch.cuda.max_memory_allocated(dev) if cuda else 0
    import ccoma
    print(json.dumps({"code": str(Path(ccoma.__file__).resolve().parents[1]), "device": dev, "gpu_peak": gpu, "rate": statistics.median(rates), "rates": rates, "cpu_rate": statistics.median(cpu_rates),
                      "warm_s": warm_s, "peak_rss": peak, "updates": learner.train_steps, "compile": compile_,
                      "buffer_size": size, "replay": _replay_bytes(buf)}))


# ------------------------------------------------------------------------------------ driver
def run_jobs(code: Path, algo: str, budget: str, n_jobs: int, args) -> list[dict]:
    """Run ``n_jobs`` identical jobs side by side on ``code``; their JSON results."""
    with tempfile.TemporaryDirectory() as barrier:
        cmd = _child_cmd(algo, budget, n_jobs, args, code) + ["--barrier", barrier]
        procs = [_spawn(code, cmd, i, i, barrier) for i in range(n_jobs)]
        return [_result(proc, code, algo, budget) for proc in procs]


def _spawn(code: Path, cmd: list[str], job: int, seed: int, tmp: str) -> subprocess.Popen:
    """One job on ``code``. Its stderr goes to a file in ``tmp``, not a pipe: a job left waiting for its
    turn must not block on a full pipe that nobody reads until the end. Its stdout is one JSON line."""
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    with open(Path(tmp, f"stderr.{job}"), "w") as err:
        proc = subprocess.Popen(cmd + ["--job", str(job), "--seed", str(seed)], env=env, cwd=str(code),
                                stdout=subprocess.PIPE, stderr=err, text=True)
    proc.stderr_path = Path(tmp, f"stderr.{job}")
    return proc


def _failed(proc: subprocess.Popen, code: Path, algo: str, budget: str) -> SystemExit:
    return SystemExit(f"job on {code} ({algo}, {budget}) failed:\n{proc.stderr_path.read_text()[-2000:]}")


def _result(proc: subprocess.Popen, code: Path, algo: str, budget: str) -> dict:
    stdout = proc.communicate()[0]
    if proc.returncode != 0:
        raise _failed(proc, code, algo, budget)
    res = json.loads(stdout.strip().splitlines()[-1])
    if Path(res["code"]) != Path(code).resolve():   # an installed ccoma shadowing the code under test
        raise SystemExit(f"job meant for {code} ({algo}, {budget}) ran the ccoma in {res['code']}")
    return res


def _child_cmd(algo: str, budget: str, n_jobs: int, args, code: Path) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--algo", algo, "--budget", budget,
           "--map", args.map, "--warmup", str(args.warmup), "--window", str(args.window),
           "--windows", str(args.windows), "--n-jobs", str(n_jobs), "--device", args.device]
    if args.compile is not None:
        cmd += ["--compile", str(int(args.compile))]
    # this checkout as asked (fused by default); the baseline has no fused unroll
    cmd += ["--fused-gru" if args.fused_gru and code == ROOT else "--no-fused-gru"]
    return cmd


def run_interleaved(codes: dict, algo: str, budget: str, n_jobs: int, args) -> tuple[dict, list]:
    """``--interleave``: ``n_jobs`` jobs per code, all started at once, running by turns (warm-ups one
    code after the other, then each round's windows, the order alternating round by round). Returns
    the JSON results per code and the per-round ratios of this checkout's mean rate to the baseline's."""
    names = list(codes)
    with tempfile.TemporaryDirectory() as turns:
        procs = {}
        for gi, (name, code) in enumerate(codes.items()):
            cmd = _child_cmd(algo, budget, n_jobs, args, code) + ["--turns", turns, "--group", f"g{gi}"]
            procs[name] = [(gi * n_jobs + i, _spawn(code, cmd, gi * n_jobs + i, i, turns)) for i in range(n_jobs)]

        def turn(phase: str, gi: int) -> None:
            Path(turns, f"go.{phase}.g{gi}").touch()
            jobs = procs[names[gi]]
            while not all(Path(turns, f"done.{phase}.{j}").exists() for j, _ in jobs):
                for _, proc in jobs:
                    if proc.poll() is not None and proc.returncode != 0:
                        raise _failed(proc, codes[names[gi]], algo, budget)
                time.sleep(0.05)

        try:
            for gi in range(len(names)):
                turn("warm", gi)
            for w in range(args.windows):
                order = range(len(names)) if w % 2 == 0 else reversed(range(len(names)))
                for gi in order:
                    turn(f"w{w}", gi)
            res = {name: [_result(proc, codes[name], algo, budget) for _, proc in jobs]
                   for name, jobs in procs.items()}
        finally:        # one job failed: the others would wait for their turn for ever
            for jobs in procs.values():
                for _, proc in jobs:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
    rounds = []
    if len(names) > 1:
        for w in range(args.windows):
            this, base = (statistics.mean(r["rates"][w] for r in res[k]) for k in (names[0], names[-1]))
            rounds.append(this / base)
    return res, rounds


def _mean_warm(results: list[dict]) -> float:
    return statistics.mean(r["warm_s"] for r in results)


def _fmt_rate(x: float) -> str:
    return f"{x / 1000:.2f}K"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algos", default=",".join(ALGOS))
    p.add_argument("--budgets", default="paper", help="comma list of quick, paper")
    p.add_argument("--modes", default="solo,pair", help="solo (one job), pair (two side by side)")
    p.add_argument("--baseline", default="/work/wt/baseline", help="a checkout of the commit to compare with")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--map", default="2s3z")
    p.add_argument("--device", default="cpu", help="cpu or cuda: the job's device (simulator, learner and replay, "
                   "as the harness's --device puts them); the peak column then adds the GPU's peak allocation")
    p.add_argument("--warmup", type=int, default=8_000, help="env steps before timing (compile, buffer fill)")
    p.add_argument("--window", type=int, default=10_000, help="env steps per timed window")
    p.add_argument("--windows", type=int, default=2, help="timed windows per job (median reported)")
    p.add_argument("--compile", type=int, choices=(0, 1), default=None, help="override the budget's compile flag")
    p.add_argument("--out", default="", help="also write the results as JSON here")
    p.add_argument("--fused-gru", action=argparse.BooleanOptionalAction, default=True,
                   help="this checkout's jobs unroll the GRU with the fused C loop, as the harness's do by default "
                   "(RunConfig.fused_gru); --no-fused-gru: torch.gru. The baseline's run as they always did")
    p.add_argument("--interleave", action="store_true", help="run this checkout's and the baseline's jobs by turns "
                   "(warm-ups, then window by window in alternating order) and report per-round ratios")
    # child mode (internal)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--algo", help=argparse.SUPPRESS)
    p.add_argument("--budget", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--job", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--n-jobs", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--barrier", default="", help=argparse.SUPPRESS)
    p.add_argument("--turns", default="", help=argparse.SUPPRESS)
    p.add_argument("--group", default="g0", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    for name, given, known in (("budget", args.budgets, BUDGETS), ("algo", args.algos, ALGOS + ("iql",)),
                               ("mode", args.modes, ("solo", "pair"))):
        for item in given.split(","):
            if item not in known:
                p.error(f"unknown {name} '{item}' (known: {', '.join(known)})")
    if args.device.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            p.error("--device cuda: torch sees no CUDA device")
    codes = {"this": ROOT}
    if not args.no_baseline:
        base = Path(args.baseline).resolve()   # absolute: each job runs with its code's folder as cwd
        if not (base / "ccoma").is_dir():
            p.error(f"--baseline {base} is not a ccoma checkout")
        top, commit = subprocess.run(["git", "-C", str(base), "rev-parse", "--show-toplevel", "--short", "HEAD"],
                                     capture_output=True, text=True).stdout.split() or ("", "")
        # a copy without .git of its own (carried to a GPU machine, say): named by its folder
        codes[f"base {commit if Path(top).resolve() == base.resolve() else base.name}"] = base
    modes = {"solo": 1, "pair": 2}
    rows = []
    if args.interleave and args.no_baseline:
        p.error("--interleave needs a baseline to take turns with")
    print(f"device {args.device}, map {args.map}, warm-up {args.warmup} steps, {args.windows} x {args.window}-step windows, 1 thread per job"
          + (", this checkout with --fused-gru (the default)" if args.fused_gru else ", this checkout with torch.gru")
          + (", the two codes by turns (ratio: of median rates; rounds: median [min-max] of per-round ratios)"
             if args.interleave else ""))
    print("rates: env steps per wall-clock second (per job) | per CPU-second of the job's process")
    print("replay MB: as stored (float fields as float32 / as float16)")
    print(f"{'algo':5} {'budget':6} {'mode':5} " + " ".join(f"{k:>16}" for k in codes)
          + f" {'ratio':>6} " + " ".join(f"{'cpu ' + k.split()[0]:>9}" for k in codes)
          + f" {'ratio':>6} {'peak MB':>8} {'replay MB':>9}")
    for budget in args.budgets.split(","):
        for algo in args.algos.split(","):
            for mode in args.modes.split(","):
                if args.interleave:
                    res, rounds = run_interleaved(codes, algo, budget, modes[mode], args)
                else:
                    res, rounds = {k: run_jobs(code, algo, budget, modes[mode], args) for k, code in codes.items()}, []
                rate = {k: statistics.mean(r["rate"] for r in rs) for k, rs in res.items()}
                cpu = {k: statistics.mean(r["cpu_rate"] for r in rs) for k, rs in res.items()}
                base = list(codes)[-1]
                ratio = rate["this"] / rate[base] if len(codes) > 1 else float("nan")
                cpu_ratio = cpu["this"] / cpu[base] if len(codes) > 1 else float("nan")
                rep = res["this"][0]["replay"]
                print(f"{algo:5} {budget:6} {mode:5} " + " ".join(f"{_fmt_rate(rate[k]):>16}" for k in codes)
                      + f" {ratio:>5.2f}x " + " ".join(f"{_fmt_rate(cpu[k]):>9}" for k in codes)
                      + f" {cpu_ratio:>5.2f}x {max(r['peak_rss'] for r in res['this']) / 2**20:>8.0f}"
                      + f" {rep['bytes'] / 2**20:>6.0f} ({rep['bytes_f32'] / 2**20:.0f}/{rep['bytes_f16'] / 2**20:.0f})"
                      + (f"  GPU peak {max(r.get('gpu_peak', 0) for r in res['this']) / 2**20:.0f} MB"
                         if args.device != "cpu" else "")
                      + (f"  rounds {statistics.median(rounds):.2f}x [{min(rounds):.2f}-{max(rounds):.2f}]"
                         f" warm-up {_mean_warm(res[base]) / _mean_warm(res['this']):.2f}x" if rounds else ""),
                      flush=True)
                rows.append({"algo": algo, "budget": budget, "mode": mode, "results": res,
                             "ratio": ratio, "cpu_ratio": cpu_ratio, "round_ratios": rounds,
                             "interleaved": bool(args.interleave)})
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
