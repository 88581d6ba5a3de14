"""The learning check, through the harness: does a method reach a greedy test win rate within a budget?

    python benchmarks/learning_check.py                                   # QMIX, 2s3z, seeds 0-2, 1M steps
    python benchmarks/learning_check.py -m qmix --seeds 0-9 --workers 2 --out benchmarks/results/check.csv
    python benchmarks/learning_check.py --seeds 0-9 --store runs/check --read-only        # score runs already made
    python benchmarks/learning_check.py --seeds 0-9 --store runs/check --read-only \\
        --against 'benchmarks/results/learn_static_qmix_1m_seed*_s3?.csv'
    python benchmarks/learning_check.py -m coma --seeds 0-17 --curves 'a_*.csv' --against b.csv   # saved curves

It runs the command users run, in a subprocess:

    ccoma evaluate --scenario S --budget paper --train-steps N --deploy-steps D -m M --seed ... --fused-gru

into a store of its own (``--store``: ``mlflow.db`` and the run folder), then reads every seed's learning
curve back from MLflow: ``train/test/win_rate``, the greedy test points logged during training
(``Budget.train_test_points``, 20 at the paper budget: pymarl's test win rate, 32 episodes each). It
prints, per seed, the curve, its best point and the first step that reached ``--target``, and over seeds:

- the issue's check: the median over seeds of that first step is within the budget (a seed that never
  reaches the target counts as later than any step), i.e. more than half of the seeds reach it;
- the share of seeds that reach it, with a Wilson 95% interval (three seeds say little: a method that
  reaches it in 65% of seeds passes a three-seed median check only 72% of the time);
- the late level: the mean win rate over the last fifth of training, with a bootstrap 95% interval.

``--against GLOB`` compares with ``benchmarks/learn_static.py`` CSVs (one seed per file or several) on
the test steps both have (learn_static tests every ``--eval-every``; the harness at its own points),
so the two are measured alike: the reach counts with Fisher's exact test and the late levels with a
Mann-Whitney U test, both one-sided (is the harness worse?). ``--config`` passes a RunConfig file to
``ccoma evaluate`` (e.g. ``budget: {checkpoints: 1}`` to take out the checkpoint barriers). ``--curves``
reads the harness side from ``--out`` CSVs instead (runs from several stores pooled), and ``--against``
reads those CSVs as well, so two harness configurations can be compared; the comparison also prints the
difference of the mean late levels with a bootstrap 95% interval.
"""
from __future__ import annotations

import argparse
import csv
import glob
import math
import statistics
import subprocess
import sys
from pathlib import Path

KEY = "train/test/win_rate"


def parse_seeds(text: str) -> list[int]:
    """'0-9' or '0,1,2' (or both, '0-2,5')."""
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    return out


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a proportion k / n."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def ccoma_command() -> list[str]:
    exe = Path(sys.executable).with_name("ccoma")
    if exe.is_file():
        return [str(exe)]
    return [sys.executable, "-c", "import sys; from ccoma.cli import main; sys.exit(main())"]


def store_uri(store: Path) -> str:
    """The MLflow tracking URI of ``store``'s sqlite database (where the runs go and are read from)."""
    return f"sqlite:///{(store / 'mlflow.db').resolve()}"


def run_harness(args, store: Path) -> None:
    store.mkdir(parents=True, exist_ok=True)
    cmd = ccoma_command() + [
        "evaluate", "--scenario", args.scenario, "--budget", "paper", "--train-steps", str(args.steps),
        "--deploy-steps", str(args.deploy_steps), "-m", args.method, "--workers", str(args.workers),
        "--no-report", "--run-dir", str(store / "runs"), "--tracking-uri", store_uri(store)]
    cmd.append("--fused-gru" if args.fused_gru else "--no-fused-gru")
    if args.config:
        cmd += ["--config", args.config]
    for s in args.seeds:
        cmd += ["--seed", str(s)]
    print("$", " ".join(cmd), flush=True)
    rc = subprocess.call(cmd)
    if rc != 0:
        raise SystemExit(f"ccoma evaluate exited with {rc}")


def harness_curves(args, store: Path) -> dict[int, list[tuple[int, float]]]:
    """seed -> [(step, greedy test win rate)] of the method's runs in ``store`` (the newest evaluate
    holding each seed)."""
    from ccoma.tracking import load_frame

    frame = load_frame(args.scenario, tracking_uri=store_uri(store), parent="all")
    frame = frame[(frame.key == KEY) & (frame.algo == args.method) & (frame.status == "finished")]
    curves: dict[int, list[tuple[int, float]]] = {}
    for (seed, _run), g in frame.groupby(["seed", "run_id"], sort=False):
        if int(seed) in args.seeds and int(seed) not in curves:   # frozen and other modes repeat training's points
            g = g.sort_values("step")
            curves[int(seed)] = [(int(s), float(v)) for s, v in zip(g.step, g.value)]
    return dict(sorted(curves.items()))


def csv_curves(pattern: str, algo: str) -> dict:
    """run -> [(t_env, eval_win_rate)] from benchmarks/learn_static.py or learn_source.py CSVs matching
    ``pattern``; a run is its seed, or "source:seed" when the rows name sources (learn_source.py's CSVs,
    several of which may match). This script's own ``--out`` CSVs (step, greedy_test_win_rate) are read
    too, a run being its seed: harness curves saved from several stores can be pooled and compared."""
    curves: dict = {}
    for path in sorted(glob.glob(pattern)):
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                if row["algo"] != algo:
                    continue
                if "greedy_test_win_rate" in row:   # learning_check.py --out
                    point, run = (int(row["step"]), float(row["greedy_test_win_rate"])), int(row["seed"])
                else:
                    point = (int(row["t_env"]), float(row["eval_win_rate"]))
                    run = f"{row['source']}:{row['seed']}" if row.get("source") else int(row["seed"])
                curves.setdefault(run, []).append(point)
    return {s: sorted(c) for s, c in sorted(curves.items(), key=lambda kv: str(kv[0]))}


def summary(curves: dict[int, list[tuple[int, float]]], target: float, steps: int) -> dict:
    """The check and its statistics over seeds (see the module docstring)."""
    from analysis.stats import mean_ci

    first = {s: next((t for t, w in c if w >= target), None) for s, c in curves.items()}
    ordered = sorted(math.inf if f is None else f for f in first.values())
    median_first = statistics.median(ordered) if ordered else math.nan
    reached = sum(f is not None for f in first.values())
    late = {s: statistics.fmean(w for t, w in c if t > 0.8 * steps) for s, c in curves.items()
            if any(t > 0.8 * steps for t, _ in c)}
    return {"seeds": len(curves), "first": first, "median_first": median_first,
            "passes": median_first <= steps, "reached": reached, "reach_ci": wilson(reached, len(curves)),
            "late": late, "late_ci": mean_ci(list(late.values()), bounds=(0.0, 1.0)),
            "best": {s: max(w for _, w in c) for s, c in curves.items()}}


def show(label: str, curves: dict[int, list[tuple[int, float]]], target: float, steps: int) -> dict:
    s = summary(curves, target, steps)
    print(f"\n{label}: {s['seeds']} seeds, greedy test win rate against env steps")
    for seed, c in curves.items():
        f = s["first"][seed]
        print(f"  seed {seed!s:>3}: " + " ".join(f"{w:.2f}" for _, w in c)
              + f" | best {s['best'][seed]:.2f}, first >= {target} at {f if f is not None else 'never'}")
    lo, hi = s["reach_ci"]
    mean, llo, lhi = s["late_ci"]
    med = s["median_first"]
    print(f"  reach {target} within {steps:,}: {s['reached']} of {s['seeds']} seeds "
          f"({s['reached'] / max(s['seeds'], 1):.0%}, Wilson 95% {lo:.0%}-{hi:.0%})")
    print(f"  median first step at {target}: {'never' if med == math.inf else f'{med:,.0f}'} -> check "
          f"{'PASSES' if s['passes'] else 'FAILS'} (median of {s['seeds']} seeds)")
    print(f"  late level (mean over steps > {0.8 * steps:,.0f}): {mean:.2f} [95% {llo:.2f}-{lhi:.2f}]")
    return s


def on_steps(curves: dict[int, list[tuple[int, float]]], steps: set[int]) -> dict[int, list[tuple[int, float]]]:
    return {s: [(t, w) for t, w in c if t in steps] for s, c in curves.items()}


def snap(curves: dict, grid: set[int], tol: int) -> dict:
    """``curves`` with each test step within ``tol`` env steps of a step of ``grid`` relabelled as that
    step: 6baf4c6's learn_static tests at the first batched step (32 environments) past each interval
    counted from its previous test (50,016, 100,032, 150,048, ..., 16 steps later each time), which
    then line up with the harness's points at 50,000, 100,000, ..."""
    out = {}
    for run, c in curves.items():
        moved = []
        for t, w in c:
            near = min(grid, key=lambda g: abs(g - t)) if grid else t
            moved.append((near if abs(near - t) <= tol else t, w))
        out[run] = moved
    return out


def compare(harness: dict, other: dict, target: float, steps: int, tol: int = 0) -> None:
    from scipy import stats

    if tol:
        other = snap(other, {t for c in harness.values() for t, _ in c}, tol)
    common = set.intersection(*({t for t, _ in c} for c in [*harness.values(), *other.values()]))
    grid = sorted(common)
    print(f"\nlike with like: both on their common test steps ({len(grid)}: {grid[0]:,} ... {grid[-1]:,})"
          if grid else "\nno common test steps: nothing to compare")
    if not grid:
        return
    a = show("harness (common steps)", on_steps(harness, common), target, steps)
    b = show("the CSVs (common steps)", on_steps(other, common), target, steps)
    table = [[a["reached"], a["seeds"] - a["reached"]], [b["reached"], b["seeds"] - b["reached"]]]
    fisher = stats.fisher_exact(table, alternative="less").pvalue
    la, lb = list(a["late"].values()), list(b["late"].values())
    late = stats.mannwhitneyu(la, lb, alternative="less").pvalue
    both = stats.mannwhitneyu(la, lb, alternative="two-sided").pvalue
    print(f"\none-sided tests, harness worse than the CSVs: reach (Fisher exact) p = {fisher:.3f}; "
          f"late level (Mann-Whitney U) p = {late:.3f} (two-sided {both:.3f})")
    if len(la) >= 2 and len(lb) >= 2:
        import numpy as np

        from analysis.stats import _bootstrap

        lo, hi = _bootstrap((np.asarray(la), np.asarray(lb)),
                            lambda x, y, axis=-1: x.mean(axis=axis) - y.mean(axis=axis), 10_000, 0)
        print(f"late level, harness minus the CSVs: {np.mean(la) - np.mean(lb):+.2f} "
              f"[95% bootstrap {float(lo):+.2f}, {float(hi):+.2f}]")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenario", default="2s3z")
    p.add_argument("-m", "--method", default="qmix", help="one frozen method (an algo): its training is checked")
    p.add_argument("--seeds", default="0-2", type=parse_seeds)
    p.add_argument("--steps", type=int, default=1_000_000, help="training steps (the check's budget)")
    p.add_argument("--deploy-steps", type=int, default=6400, help="a short deployment: only training is checked")
    p.add_argument("--target", type=float, default=0.8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-fused-gru", dest="fused_gru", action="store_false", help="torch.gru's unroll")
    p.add_argument("--config", default=None, help="a RunConfig YAML passed to ccoma evaluate")
    p.add_argument("--store", default="runs/learning_check", help="the MLflow store and run folder")
    p.add_argument("--read-only", action="store_true", help="score the runs already in --store, run nothing")
    p.add_argument("--curves", default=None, metavar="GLOB",
                   help="the harness side from this script's --out CSVs (a glob; runs nothing, reads no store)")
    p.add_argument("--against", default=None, help="learn_static CSVs (a glob) to compare with")
    p.add_argument("--out", default=None, help="write every curve point here (CSV)")
    p.add_argument("--step-tolerance", type=int, default=0, metavar="N",
                   help="with --against: a CSV test step within N env steps of a harness test step counts "
                        "as that step (e.g. 512 for 6baf4c6's learn_static: 50,016, 100,032, ... 16 more each test)")
    args = p.parse_args(argv)
    store = Path(args.store)
    if args.curves:
        curves = {s: c for s, c in csv_curves(args.curves, args.method).items() if s in args.seeds}
        where = args.curves
    else:
        if not args.read_only:
            run_harness(args, store)
        curves, where = harness_curves(args, store), store
    missing = sorted(set(args.seeds) - set(curves))
    if missing:
        print(f"no finished {args.method} runs with {KEY} for seeds {missing} in {where}", file=sys.stderr)
    if not curves:
        return 1
    show(f"{args.method} on {args.scenario} through ccoma evaluate", curves, args.target, args.steps)
    if args.against:
        other = csv_curves(args.against, args.method)
        if not other:
            print(f"no {args.method} rows in {args.against}", file=sys.stderr)
            return 1
        show(f"{args.method} from {args.against}", other, args.target, args.steps)
        compare(curves, other, args.target, args.steps, args.step_tolerance)
    if args.out:
        with open(args.out, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["source", "algo", "seed", "step", "greedy_test_win_rate"])
            for seed, c in curves.items():
                w.writerows(["harness", args.method, seed, t, f"{v:.4f}"] for t, v in c)
        print(f"\ncurves written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # analysis/ from a checkout
    sys.exit(main())
