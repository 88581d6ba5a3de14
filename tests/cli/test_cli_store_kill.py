"""A kill during the first MLflow set-up (schema migrations, ~5 s) must not break the store for good."""
import os
import subprocess
import sys

# Counts SQL statements and SIGKILLs the process at statement N: a kill at a precise moment of
# MLflow's migrations. "fork" mode imports MLflow once and forks one child per moment.
KILLER = r"""
import os, signal, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine

def die_at(n):
    count = [0]
    @event.listens_for(Engine, "before_cursor_execute")
    def _count(*args):
        count[0] += 1
        if count[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)

if sys.argv[1] == "fork":
    import ccoma.tracking
    for n in map(int, sys.argv[3].split(",")):
        pid = os.fork()
        if pid == 0:
            die_at(n)
            ccoma.tracking.Tracker(f"sqlite:///{sys.argv[2]}")
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print(n, "killed" if os.WIFSIGNALED(status) else "finished", flush=True)
else:
    die_at(int(sys.argv[2]))
    from ccoma.cli import main
    main(sys.argv[3:])
"""
MOMENTS = [2, 650, 1300]  # of ~1700 statements in a new store's set-up
ARGS = ["evaluate", "--budget", "smoke", "--no-report", "-m", "vdn", "--train-steps", "800",
        "--deploy-steps", "800", "--workers", "1"]


def test_kills_during_first_setup_leave_a_store_that_works(tmp_path):
    # an empty template cache: the new store is built by MLflow's migrations, killed in the middle
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_LOGGING_LEVEL": "WARNING",
           "CCOMA_CACHE_DIR": str(tmp_path / "cache")}
    db = tmp_path / "mlflow.db"
    res = subprocess.run([sys.executable, "-c", KILLER, "fork", str(db), ",".join(map(str, MOMENTS))],
                         capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert res.stdout.split() == [w for n in MOMENTS for w in (str(n), "killed")], res.stdout + res.stderr
    assert not db.exists()  # never a half-migrated mlflow.db; only temporary files
    # the real command, killed in the middle of its set-up, then resumed
    killed = subprocess.run([sys.executable, "-c", KILLER, "cli", "900", *ARGS], capture_output=True, text=True,
                            env=env, timeout=300, cwd=tmp_path)
    assert killed.returncode == -9, killed.stderr
    res = subprocess.run([sys.executable, "-m", "ccoma.cli", *ARGS, "--resume"], capture_output=True, text=True,
                         env=env, timeout=300, cwd=tmp_path)
    assert res.returncode == 0 and "1 jobs finished, 0 failed" in res.stdout, res.stdout + res.stderr
    assert sorted(p.name for p in tmp_path.glob("mlflow.db*")) == ["mlflow.db", "mlflow.db.lock"]
    from ccoma.tracking import Tracker

    runs = Tracker(f"sqlite:///{db}").reader.load_runs("shifting_spawn")
    assert set(runs.status) == {"finished"} and len(runs) == 2
