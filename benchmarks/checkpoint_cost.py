"""What checkpoints cost a job: the seconds its thread spends saving them, this code against a baseline.

    python benchmarks/checkpoint_cost.py --baseline /work/wt/prev -- \\
        --scenario paper_dynamic --budget paper --train-steps 1000000 --deploy-steps 250000 \\
        -m qmix -m c-qmix --seed 0 --workers 1 --threads 2 --no-report

Everything after ``--`` is an ``ccoma evaluate`` command line. The script runs it in a fresh folder
(in this process's child, ``--workers 1`` keeps the job in it) once with this checkout's code and,
with ``--baseline DIR``, once with the code of DIR (a git worktree of another commit), alternating
``--repeat`` times. For each run it prints the whole command's wall-clock, and how long the job's own
thread was inside the checkpoint calls (``Job._save``, and waiting at the end for a write still in
flight where the code writes in the background) with their count: the time training did not go on
because of checkpoints; and the process's CPU time (user + system, all its threads) and peak
resident memory. TORCHINDUCTOR_CACHE_DIR is shared by all runs (filled by a short untimed run
first with ``--warm``) so compilation does not differ between them.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Run inside the child: wrap the checkpoint calls of whichever code is on sys.path, then run the CLI.
CHILD = r"""
import json, sys, time
from ccoma.job import runner
spent = {"save_s": 0.0, "save_n": 0, "close_s": 0.0, "close_n": 0}
def timed(name):
    fn = getattr(runner.Job, name, None)
    if fn is None:                 # older code: no such call
        return
    def wrapper(self, *a, **k):
        t = time.perf_counter()
        try:
            return fn(self, *a, **k)
        finally:
            spent[name[1:] + "_s"] += time.perf_counter() - t
            spent[name[1:] + "_n"] += 1
    setattr(runner.Job, name, wrapper)
timed("_save")
timed("_close")                    # this code: the end of the job waits for a write in flight
from ccoma.cli import cli
code = cli.main(args=sys.argv[2:], prog_name="ccoma", standalone_mode=False)
import resource
use = resource.getrusage(resource.RUSAGE_SELF)
spent["peak_rss_mb"] = use.ru_maxrss / 1024
spent["cpu_s"] = use.ru_utime + use.ru_stime
with open(sys.argv[1], "w") as fh:
    json.dump(spent, fh)
sys.exit(code)
"""


def run_once(code: Path, args: list[str], cache: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code), TORCHINDUCTOR_CACHE_DIR=cache)
    with tempfile.TemporaryDirectory(prefix="ckpt-cost-") as tmp:
        out = Path(tmp) / "spent.json"
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, str(out), "evaluate", *args], cwd=tmp, env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"run with {code} failed (rc {proc.returncode}): {proc.stderr.strip()[-800:]}")
        spent = json.loads(out.read_text())
        tests = final_tests(Path(tmp) / "mlflow.db")
    return {"code": str(code), "wall_s": round(wall, 1), "checkpoint_s": round(spent["save_s"] + spent["close_s"], 1),
            "saves": spent["save_n"], "cpu_s": round(spent.get("cpu_s", 0), 1),
            "peak_rss_mb": round(spent.get("peak_rss_mb", 0)),
            "greedy_test_final": tests}


def final_tests(db: Path) -> dict:
    """Each run's last greedy test win rate (the runs of both codes must agree: checkpoints do not
    change what is computed)."""
    import sqlite3

    if not db.exists():
        return {}
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT r.name, m.value FROM metrics m JOIN runs r ON r.run_uuid = m.run_uuid "
                           "WHERE m.key = 'deploy/test/win_rate' ORDER BY m.step").fetchall()
    return {name: round(value, 4) for name, value in rows}   # the last step's value wins


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", type=Path, help="a checkout of the code to compare with (git worktree)")
    p.add_argument("--repeat", type=int, default=1, help="alternating runs of each code")
    p.add_argument("--warm", action="store_true",
                   help="one short untimed run first (20K + 8K steps), to fill the compile cache")
    p.add_argument("--out", type=Path, help="write the runs as JSON")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the ccoma evaluate arguments")
    a = p.parse_args(argv)
    args = a.command[1:] if a.command[:1] == ["--"] else a.command
    codes = [ROOT] + ([a.baseline.resolve()] if a.baseline else [])
    cache = tempfile.mkdtemp(prefix="ckpt-cost-inductor-")
    if a.warm:
        run_once(ROOT, [*args, "--train-steps", "20000", "--deploy-steps", "8000"], cache)
    runs = []
    for _ in range(a.repeat):
        for code in codes:
            r = run_once(code, args, cache)
            runs.append(r)
            print(f"{r['code']}: wall {r['wall_s']} s, in checkpoints {r['checkpoint_s']} s ({r['saves']} saves), "
                  f"CPU {r['cpu_s']} s, peak RSS {r['peak_rss_mb']} MB; "
                  f"final greedy test win rates {r['greedy_test_final']}", flush=True)
    if a.out:
        a.out.write_text(json.dumps({"command": ["ccoma", "evaluate", *args], "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
