"""End to end through the CLI with the smoke budget, against real MLflow stores."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from smoke_checks import check_store, predict_champion, series

SMOKE = ["evaluate", "--budget", "smoke", "--no-report", "--workers", "1"]


def ccoma(args, cwd, timeout=300, check=True):
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"}
    res = subprocess.run([sys.executable, "-m", "ccoma.cli", *args], cwd=cwd, capture_output=True, text=True,
                         timeout=timeout, env=env)
    if check and res.returncode != 0:
        raise AssertionError(f"ccoma {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


def test_evaluate_smoke_sqlite(smoke_evaluate):
    assert "6 jobs finished, 0 failed" in smoke_evaluate.stdout
    assert (smoke_evaluate.root / "mlflow.db").exists()
    frame = check_store(smoke_evaluate.uri, ["c-coma", "coma", "qmix", "vdn", "c-qmix", "c-vdn", "coma-explore"])
    # every job reported its progress for the bar: train + each deployment, all done (COMA also
    # deploys coma-explore, the sampling control)
    paths = list(smoke_evaluate.root.glob("ccoma_runs/*/*-seed*/progress.json"))
    reports = {p.parent.name: json.loads(p.read_text()) for p in paths}
    assert len(reports) == 6, reports
    for job, r in reports.items():
        total = 12000 if job.startswith("coma-") else 9000
        assert r == {"done": total, "total": total}, (job, r)
    # C-COMA and frozen COMA start their deployments from the same weights, tested greedily on the
    # same episodes: their first test points are identical
    for seed in (0, 1):
        first = {m: series(frame, m, "deploy/test/win_rate", seed)[0] for m in ("coma", "c-coma", "coma-explore")}
        assert first["coma"] == first["c-coma"] == first["coma-explore"], first


def test_every_method_the_cli_lists_runs_end_to_end(tmp_path):
    """One smoke evaluate over every registered method (and --reference): no failed job, every model
    served, and a from-scratch reference per learner on the unseen phase, timed by its own steps."""
    from ccoma.algos.registry import methods
    from ccoma.tracking import Tracker, load_frame

    names = list(methods())
    args = ["evaluate", "--budget", "smoke", "--no-report", "--workers", "2", "--seed", "0", "--reference",
            "--train-steps", "1500", "--deploy-steps", "1500"]
    res = ccoma(args + [a for m in names for a in ("-m", m)], tmp_path, timeout=900)
    assert "5 jobs finished, 0 failed" in res.stdout, res.stdout
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    frame = load_frame("shifting_spawn", tracking_uri=uri)
    refs = frame[frame.method.str.endswith("-reference")]
    assert set(refs.method) == {f"{a}-reference" for a in ("coma", "qmix", "vdn", "iql", "mfq")}
    # the reference trains only on the unseen phase, for as long as it lasts (1500 - 300 steps: the
    # scenario's unseen situations begin at 20% of the deployment)
    steps = refs[refs.key == "eval/new_sites/win_rate"].groupby("method").step.max()
    assert (steps == 1200).all(), steps
    run = Tracker(uri).client.get_run(refs.run_id.iloc[0]).data
    assert run.params["reference.phase"] == "new_sites" and run.tags["ccoma.mode"] == "reference"
    assert not [m for m in Tracker(uri).registry.list_models("shifting_spawn") if m["name"].endswith("-reference")]
    frame = check_store(uri, names, exclude_suffix="-reference", steps_per_stage=1500)
    assert set(frame.method) == set(names)
    predict_champion(uri, "ccoma-shifting_spawn-mfq")
    predict_champion(uri, "ccoma-shifting_spawn-c-mfq")


def test_evaluate_smoke_server(tmp_path, mlflow_server):
    ccoma(SMOKE + ["-m", "c-vdn", "--seed", "1", "--tracking-uri", mlflow_server], tmp_path)
    assert not (tmp_path / "mlflow.db").exists()
    check_store(mlflow_server, ["c-vdn"])
    predict_champion(mlflow_server, "ccoma-shifting_spawn-c-vdn")


# Runs the CLI in-process (one worker) and SIGKILLs itself at a chosen moment of the continual
# deployment: at its 2nd checkpoint, after the checkpoint is on disk and before ("window") or halfway
# through ("partial") logging that checkpoint's metric points, the two places where points can be lost
# or duplicated.
KILLER = r"""
import os, signal, sys
from ccoma import job
flush, seen = job.Job._flush, []
def dying_flush(self, stage):
    if stage.name == "deploy/continual" and stage.points:
        seen.append(stage.t)
        if len(seen) == 2:
            if sys.argv[1] == "partial":
                points = stage.points
                stage.points = points[: len(points) // 2]
                flush(self, stage)
            os.kill(os.getpid(), signal.SIGKILL)
    flush(self, stage)
job.Job._flush = dying_flush
from ccoma.cli import main
main(sys.argv[2:])
"""
KILL_ARGS = SMOKE + ["-m", "c-coma", "--seed", "3", "--train-steps", "4000", "--deploy-steps", "4000"]


def _compare(a, b):
    keys = sorted(set(a.key))
    assert keys == sorted(set(b.key))
    for key in keys:
        sa, sb = series(a, "c-coma", key), series(b, "c-coma", key)
        assert [s for s, _ in sa] == [s for s, _ in sb], f"{key}: steps differ (lost or duplicated points)"
        assert np.allclose([v for _, v in sa], [v for _, v in sb], atol=1e-6), f"{key}: values differ"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("full")
    ccoma(KILL_ARGS, root)
    from ccoma.tracking import load_frame

    return load_frame("shifting_spawn", tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


@pytest.mark.parametrize("moment", ["window", "partial"])
def test_killed_and_resumed_run_has_the_same_metrics(tmp_path, uninterrupted, moment):
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.run([sys.executable, "-c", KILLER, moment, *KILL_ARGS], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    from ccoma import checkpoint

    state = checkpoint.load(next((tmp_path / "ccoma_runs").glob("*/coma-seed3/checkpoint.pt")))
    assert state["stage"]["name"] == "deploy/continual" and 0 < state["stage"]["t"] < 4000
    res = ccoma(KILL_ARGS + ["--resume"], tmp_path)
    assert "1 jobs finished" in res.stdout
    from ccoma.tracking import load_frame

    _compare(uninterrupted, load_frame("shifting_spawn", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))


def test_ray_gives_the_same_results_as_the_local_pool(tmp_path, smoke_evaluate):
    """Jobs on a real local Ray runtime log what the session's local process pool logged for the same
    (learner, seed): the smoke run of six methods x 2 seeds on 2 workers (frozen deployments come
    before continual ones, so running only the frozen methods here changes nothing they log)."""
    pytest.importorskip("ray")
    args = SMOKE[:-2] + ["-m", "qmix", "-m", "vdn", "--seed", "0"]
    res = ccoma(args + ["--executor", "ray"], tmp_path, timeout=400)
    assert "2 jobs finished, 0 failed" in res.stdout
    from ccoma.tracking import load_frame

    a = load_frame("shifting_spawn", tracking_uri=smoke_evaluate.uri)
    b = load_frame("shifting_spawn", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    for method in ("qmix", "vdn"):
        for key in ("train/return", "deploy/return", "eval/new_sites/return", "deploy/test/return"):
            sa, sb = series(a, method, key, 0), series(b, method, key, 0)
            assert sa and [s for s, _ in sa] == [s for s, _ in sb]
            assert np.allclose([v for _, v in sa], [v for _, v in sb], atol=1e-6)


def test_train_then_deploy_a_checkpoint(tmp_path):
    short = ["--train-steps", "1000", "--deploy-steps", "1000"]
    out = ccoma(["train", "--budget", "smoke", "--algo", "vdn", "--seed", "2", *short], tmp_path).stdout
    ckpt = out.strip().splitlines()[-1].split("checkpoint: ")[1]
    assert (tmp_path / ckpt).exists()
    res = ccoma(["deploy", "--budget", "smoke", "--algo", "vdn", "--mode", "continual", "--checkpoint", ckpt, *short],
                tmp_path)
    assert "c-vdn: mean online win rate" in res.stdout
    from ccoma.tracking import Tracker

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = tracker.experiment_id("shifting_spawn", create=False)
    for kind in ("train", "deploy"):
        parents = tracker.client.search_runs([exp], f"tags.`ccoma.kind` = '{kind}'")
        assert len(parents) == 1 and parents[0].data.tags["ccoma.status"] == "finished"
    bad = ccoma(["deploy", "--budget", "smoke", "--algo", "coma", "--checkpoint", ckpt], tmp_path, check=False)
    assert bad.returncode == 2 and "holds a 'vdn' learner" in bad.stderr and "Traceback" not in bad.stderr


def _alive_in(folder) -> list[int]:
    """Pids of living processes whose working directory is ``folder`` (the command and its workers)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(proc / "cwd") == str(folder) and (proc / "stat").read_text().split()[2] != "Z":
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


def _pool_workers(folder) -> list[int]:
    """The process pool's workers among the processes working in ``folder``."""
    return [pid for pid in _alive_in(folder) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def _start_and_wait(tmp_path, steps: int):
    """``KILL_ARGS`` on a process pool (one worker), once its job has played ``steps`` env steps."""
    import time

    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "ccoma.cli", *KILL_ARGS, "--workers", "2"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done, deadline = 0, time.monotonic() + 300
    while done < steps and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        files = list((tmp_path / "ccoma_runs").glob("*/coma-seed3/progress.json"))
        done = json.loads(files[0].read_text())["done"] if files else 0
        time.sleep(0.2)
    return proc


def _runs(tmp_path) -> dict:
    from ccoma.tracking import Tracker

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = tracker.client.search_runs([tracker.experiment_id("shifting_spawn", create=False)])
    return {r.info.run_name: (r.info.status, r.data.tags.get("ccoma.error", "")) for r in runs}


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs /proc")
def test_sigterm_to_the_command_stops_its_workers_and_marks_the_runs(tmp_path):
    """SIGTERM to the command alone (a batch scheduler's stop, `kill PID`): the pool's workers are
    stopped, not orphaned to go on writing; runs are marked interrupted; the exit says how to resume.
    Here the worker is frozen (SIGSTOP) first, as a worker too busy to mark its run within the grace
    period is: the command kills it and marks the run it left open."""
    import time

    proc = _start_and_wait(tmp_path, 1)  # the pool's worker is training
    workers = _pool_workers(tmp_path)
    assert len(workers) == 1 and proc.pid not in workers
    os.kill(workers[0], signal.SIGSTOP)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err and "interrupted" in err and "Traceback" not in err
    time.sleep(1.0)
    assert _alive_in(tmp_path) == []
    runs = _runs(tmp_path)
    assert {status for status, _ in runs.values()} == {"KILLED"}, runs
    assert "stopped before it could mark the run" in runs["c-coma-seed3"][1]


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs /proc")
def test_a_worker_killed_from_outside_fails_its_job_and_runs(tmp_path):
    """A worker SIGKILLed by someone else (the kernel's OOM killer): the command reports the job
    failed, exits non-zero, and no run stays RUNNING."""
    proc = _start_and_wait(tmp_path, 1)
    os.kill(_pool_workers(tmp_path)[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "0 jobs finished, 1 failed" in out, (out, err)
    assert "Traceback" not in err
    runs = _runs(tmp_path)
    assert {status for status, _ in runs.values()} == {"FAILED"}, runs
    assert "worker ended without closing" in runs["c-coma-seed3"][1]


def test_ctrl_c_in_a_terminal_then_resume_has_the_same_metrics(tmp_path, uninterrupted):
    """A real Ctrl-C (the terminal's interrupt character, to the whole process group) while the pool's
    worker is deploying: the command stops within seconds, exits 130 and says how to resume."""
    import time

    pexpect = pytest.importorskip("pexpect")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    args = KILL_ARGS + ["--workers", "2"]  # a process pool (of one worker: there is one job)
    # as a terminal user starts it: SIGINT at its default even when this test runs from a background
    # job (which inherits SIGINT ignored, and Python then never raises KeyboardInterrupt)
    child = pexpect.spawn(sys.executable, ["-m", "ccoma.cli", *args], cwd=str(tmp_path), env=env,
                          encoding="utf-8", timeout=300,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    progress = tmp_path / "ccoma_runs"
    done = 0
    while done < 5000:  # into the deployment (train 4000 + deploy 4000 steps)
        assert child.isalive(), child.read()
        files = list(progress.glob("*/coma-seed3/progress.json"))
        done = json.loads(files[0].read_text())["done"] if files else 0
        time.sleep(0.2)
    child.sendintr()
    child.expect(pexpect.EOF, timeout=60)
    child.close()
    assert child.exitstatus == 130, child.before
    assert "--resume" in child.before and "interrupted" in child.before
    from ccoma.tracking import load_frame

    runs = _runs(tmp_path)  # the worker marked its run (or, given no time to, the command did), and the parent
    assert {status for status, _ in runs.values()} == {"KILLED"}, runs
    res = ccoma(args + ["--resume"], tmp_path)
    assert "1 jobs finished" in res.stdout
    _compare(uninterrupted, load_frame("shifting_spawn", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))
