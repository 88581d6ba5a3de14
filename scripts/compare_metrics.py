"""Do two source trees give the same metrics? Runs one ``ccoma evaluate`` in each and compares.

    python scripts/compare_metrics.py --base /path/to/old/tree [--new .] [-- extra evaluate args]

Each tree runs ``ccoma evaluate -s shifting_spawn -b smoke --no-report`` (plus the extra args) in a
fresh folder with its own sqlite store, with PYTHONPATH pointing at that tree. Then every metric
point of every child run (method, seed, metric, step, value) and every registered model's win-rate
tag are compared. Exit 0 when identical, 1 otherwise (the differences are printed). Used to show
that a refactor changed no behaviour (a git worktree of the previous commit is a convenient base).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def run_tree(tree: Path, workdir: Path, extra: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = [sys.executable, "-m", "ccoma.cli", "evaluate", "-s", "shifting_spawn", "-b", "smoke", "--no-report",
           "--workers", "1", *extra]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: evaluate failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return collect(workdir / "mlflow.db")


def collect(db: Path) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    points = {}
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id], "tags.`ccoma.kind` = 'method'", max_results=1000):
            who = (run.data.tags.get("ccoma.method"), run.data.tags.get("ccoma.seed"))
            for key in run.data.metrics:
                for m in client.get_metric_history(run.info.run_id, key):
                    points[(*who, key, m.step)] = m.value
    return points


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, type=Path, help="the reference source tree")
    ap.add_argument("--new", default=Path("."), type=Path, help="the tree under test (default: here)")
    ap.add_argument("extra", nargs="*", help="extra arguments for ccoma evaluate")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        old = run_tree(args.base.resolve(), Path(a), args.extra)
        new = run_tree(args.new.resolve(), Path(b), args.extra)
    diff = sorted(set(old) ^ set(new)) + sorted(k for k in set(old) & set(new) if old[k] != new[k])
    print(f"{len(old)} metric points in base, {len(new)} in new; {len(diff)} differ")
    for k in diff[:40]:
        print("  ", k, old.get(k), "->", new.get(k))
    return 1 if diff or not old else 0


if __name__ == "__main__":
    sys.exit(main())
