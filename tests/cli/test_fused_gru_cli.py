"""``--fused-gru`` (the default since session 35): a job unrolls its learners' GRU with the fused C loop
(COMA's critic walks in C), records which ran, and leaves the process's setting as it found it;
``--no-fused-gru`` runs torch.gru and the critic's step-by-step walk, and records that."""

import pytest
from click.testing import CliRunner

from ccoma.algos import fused_gru
from ccoma.cli import cli


@pytest.mark.parametrize("method,flag", [("c-qmix", []), ("c-coma", ["--fused-gru"])])
def test_fused_gru_runs_through_evaluate_and_is_recorded(method, flag, tmp_path, monkeypatch, critic_walks):
    from ccoma.algos import networks
    from ccoma.tracking import Tracker

    monkeypatch.chdir(tmp_path)
    packed = []                                # (slots run, slots in the batch) of each packed unroll
    real = networks.episode_packing

    def spy(steps, t, n):
        index, rows = real(steps, t, n)
        packed.append((len(index), len(steps) * t * n))
        return index, rows

    monkeypatch.setattr(networks, "episode_packing", spy)
    res = CliRunner().invoke(cli, ["evaluate", "--budget", "smoke", "-m", method, "--seed", "0", "--workers", "1",
                                   *flag, "--no-report"])
    assert res.exit_code == 0, res.output
    assert "1 jobs finished, 0 failed" in res.output
    assert not fused_gru._on()                 # the job ran in this process; the default is back
    client = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}").client
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parent = [r for r in runs if "fused_gru" in r.data.params]
    assert parent and all(r.data.params["fused_gru"] == "True" for r in parent)
    child = [r for r in runs if r.data.tags.get("mlflow.runName", "").startswith(method)]
    assert child and child[0].info.status == "FINISHED"
    expected = "fused C unroll" if fused_gru.c_compiler()[1] else "torch.gru (no C compiler"
    assert child[0].data.tags["ccoma.gru_unroll"].startswith(expected)
    loss = "train/loss/critic_loss" if method == "c-coma" else "train/loss/loss"
    assert client.get_metric_history(child[0].info.run_id, loss)   # updates ran
    if fused_gru.c_compiler()[1]:              # the learners' updates skipped their batches' padding
        assert packed and all(run < total for run, total in packed)
    if method == "c-coma":                     # the critic walked in C, in training and in deployment
        expected = "fused C walk" if fused_gru.c_compiler()[1] else "step by step (no C compiler"
        assert child[0].data.tags["ccoma.critic_walk"].startswith(expected)
        assert bool(critic_walks) == bool(fused_gru.c_compiler()[1])
    else:
        assert "ccoma.critic_walk" not in child[0].data.tags and not critic_walks


def test_no_fused_gru_runs_torch_gru_and_is_recorded(tmp_path, monkeypatch, critic_walks):
    from ccoma.algos import networks
    from ccoma.tracking import Tracker

    monkeypatch.chdir(tmp_path)
    packed = []
    monkeypatch.setattr(networks, "episode_packing", lambda *a: packed.append(a) or None)
    res = CliRunner().invoke(cli, ["evaluate", "--budget", "smoke", "-m", "c-coma", "--seed", "0", "--workers", "1",
                                   "--no-fused-gru", "--no-report"])
    assert res.exit_code == 0, res.output
    client = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}").client
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert all(r.data.params["fused_gru"] == "False" for r in runs if "fused_gru" in r.data.params)
    child = [r for r in runs if r.data.tags.get("mlflow.runName", "").startswith("c-coma")]
    assert child and child[0].info.status == "FINISHED"
    assert child[0].data.tags["ccoma.gru_unroll"] == "torch.gru (fused unroll off)"
    assert child[0].data.tags["ccoma.critic_walk"] == "step by step (fused unroll off)"
    assert client.get_metric_history(child[0].info.run_id, "train/loss/critic_loss")   # updates ran
    assert not packed and not critic_walks     # every slot computed, the critic walked step by step
