"""Runs that end in an error are FAILED with the reason as a tag; report skips failed and dangling runs."""
import os
import subprocess
import sys

import pytest


def test_open_runs_are_failed_with_their_reason(sqlite_store):
    from ccoma.errors import CcomaError
    from ccoma.store_guard import OPEN_RUNS, fail_open_runs
    from ccoma.tracking import Tracker

    tracker = Tracker(sqlite_store)
    parent = tracker.evaluate_run("s1", "k1", backend="ccoma-sim 1.0", budget="smoke")
    child = tracker.method_run(parent, method="qmix", algo="qmix", mode="frozen", seed=0)
    assert {parent.run_id, child.run_id} <= set(OPEN_RUNS)
    fail_open_runs(CcomaError("--device cuda: CUDA is not available on this machine"))
    for run_id in (parent.run_id, child.run_id):
        run = tracker.client.get_run(run_id)
        assert run.info.status == "FAILED" and run.data.tags["ccoma.status"] == "failed"
        assert run.data.tags["ccoma.error"] == "--device cuda: CUDA is not available on this machine"
    assert not OPEN_RUNS
    # resumed and finished: the old reason goes
    again = tracker.evaluate_run("s1", "k1", backend="ccoma-sim 1.0", budget="smoke")
    again.finish("finished")
    assert "ccoma.error" not in tracker.client.get_run(parent.run_id).data.tags


def test_report_skips_newer_failed_and_dangling_parents(logged_runs):
    from ccoma.tracking import Tracker

    tracker = Tracker(logged_runs.uri)
    dangling = tracker.evaluate_run(logged_runs.scenario, "killed", backend="ccoma-sim 1.0", budget="smoke")
    failed = tracker.evaluate_run(logged_runs.scenario, "broken", backend="ccoma-sim 1.0", budget="smoke")
    failed.finish("failed", "MLflow server unreachable")
    runs = tracker.reader.load_runs(logged_runs.scenario)
    assert set(runs.parent_run_id[runs.kind == "method"]) == {logged_runs.parent_run_id}
    assert tracker.skipped_parents == {dangling.run_id: (logged_runs.scenario, "running"),
                                       failed.run_id: (logged_runs.scenario, "failed")}
    from analysis.report import build_report

    md = build_report(logged_runs.scenario, logged_runs.uri, "rep", "md", log_to_mlflow=False)[0].read_text()
    assert "Skipped 2 newer evaluate run(s)" in md and dangling.run_id in md


@pytest.mark.parametrize("extra", [["--device", "cuda"], ["--config", "bad_algo.yaml"]])
def test_a_command_that_fails_leaves_no_run_running(sqlite_store, tmp_path, extra):
    import torch

    if extra[0] == "--device" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    (tmp_path / "bad_algo.yaml").write_text("algo: {vdn: {no_such_field: 1}}\n")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    res = subprocess.run([sys.executable, "-m", "ccoma.cli", "evaluate", "--budget", "smoke", "-m", "vdn",
                          "--no-report", "--workers", "1", *extra], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode in (1, 2) and "Traceback" not in res.stderr, res.stderr
    from ccoma.tracking import Tracker

    tracker = Tracker(sqlite_store)  # an empty, migrated store copied in before the command ran
    exp = tracker.experiment_id("shifting_spawn", create=False)
    if exp is None:
        return  # refused before anything was logged: nothing can be left running
    runs = tracker.client.search_runs([exp])
    assert runs and all(r.info.status == "FAILED" for r in runs), [r.info.status for r in runs]
    needle = "CUDA" if extra[0] == "--device" else "no_such_field"
    for r in runs:  # a parent whose jobs ran says how many failed; the runs that failed say why
        reason = r.data.tags.get("ccoma.error", "")
        assert needle in reason or (r.data.tags.get("ccoma.kind") == "evaluate" and "1 job(s) failed" in reason), \
            reason
