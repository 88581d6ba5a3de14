"""End to end through the CLI with the smoke budget, against real MLflow stores."""
import json
import os
import signal
import subprocess
import sys

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
    check_store(smoke_evaluate.uri, ["c-coma", "coma", "qmix", "vdn", "c-qmix", "c-vdn"])
    # every job reported its progress for the bar: train + frozen + continual deployment, all done
    reports = [json.loads(p.read_text()) for p in smoke_evaluate.root.glob("ccoma_runs/*/*-seed*/progress.json")]
    assert len(reports) == 6 and all(r == {"done": 9000, "total": 9000} for r in reports), reports


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
    import torch

    state = torch.load(next((tmp_path / "ccoma_runs").glob("*/coma-seed3/checkpoint.pt")), weights_only=True)
    assert state["stage"]["name"] == "deploy/continual" and 0 < state["stage"]["t"] < 4000
    res = ccoma(KILL_ARGS + ["--resume"], tmp_path)
    assert "1 jobs finished" in res.stdout
    from ccoma.tracking import load_frame

    a, b = uninterrupted, load_frame("shifting_spawn", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    keys = sorted(set(a.key))
    assert keys == sorted(set(b.key))
    for key in keys:
        sa, sb = series(a, "c-coma", key), series(b, "c-coma", key)
        assert [s for s, _ in sa] == [s for s, _ in sb], f"{key}: steps differ (lost or duplicated points)"
        assert np.allclose([v for _, v in sa], [v for _, v in sb], atol=1e-6), f"{key}: values differ"


def test_ray_gives_the_same_results_as_the_local_pool(tmp_path):
    pytest.importorskip("ray")
    args = SMOKE[:-2] + ["-m", "qmix", "-m", "vdn", "--seed", "0"]
    local, ray_dir = tmp_path / "local", tmp_path / "ray"
    local.mkdir()
    ray_dir.mkdir()
    ccoma(args + ["--workers", "2"], local)
    env_home = tmp_path / "home"
    env_home.mkdir()
    res = ccoma(args + ["--executor", "ray"], ray_dir, timeout=400)
    assert "2 jobs finished, 0 failed" in res.stdout
    from ccoma.tracking import load_frame

    a = load_frame("shifting_spawn", tracking_uri=f"sqlite:///{local / 'mlflow.db'}")
    b = load_frame("shifting_spawn", tracking_uri=f"sqlite:///{ray_dir / 'mlflow.db'}")
    for method in ("qmix", "vdn"):
        for key in ("train/return", "deploy/return", "eval/new_sites/return"):
            sa, sb = series(a, method, key), series(b, method, key)
            assert sa and [s for s, _ in sa] == [s for s, _ in sb]
            assert np.allclose([v for _, v in sa], [v for _, v in sb], atol=1e-6)


def test_train_then_deploy_a_checkpoint(tmp_path):
    out = ccoma(["train", "--budget", "smoke", "--algo", "vdn", "--seed", "2"], tmp_path).stdout
    ckpt = out.strip().splitlines()[-1].split("checkpoint: ")[1]
    assert (tmp_path / ckpt).exists()
    res = ccoma(["deploy", "--budget", "smoke", "--algo", "vdn", "--mode", "continual", "--checkpoint", ckpt],
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
