"""``--threads``: a run with more update threads than the machine fits runs, says so, and records it."""
import os

from click.testing import CliRunner

from ccoma.cli import cli


def test_threads_run_through_evaluate_and_oversubscription_is_noted(tmp_path, monkeypatch):
    from ccoma.tracking import Tracker

    monkeypatch.chdir(tmp_path)
    n = (os.cpu_count() or 1) + 1          # one job, more threads than cores
    res = CliRunner().invoke(cli, ["evaluate", "--budget", "smoke", "-m", "c-qmix", "--seed", "0", "--workers", "1",
                                   "--threads", str(n), "--no-report"])
    assert res.exit_code == 0, res.output
    assert f"1 jobs at a time x {n} threads for updates > {os.cpu_count()} CPU cores" in res.output
    assert "1 jobs finished, 0 failed" in res.output
    client = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}").client
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parent = [r for r in runs if "threads" in r.data.params]
    assert parent and all(r.data.params["threads"] == str(n) for r in parent)
    child = [r for r in runs if r.data.tags.get("mlflow.runName", "").startswith("c-qmix")]
    assert child and child[0].info.status == "FINISHED"
    assert client.get_metric_history(child[0].info.run_id, "train/loss/loss")   # updates ran (at n threads)
