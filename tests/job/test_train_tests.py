"""Greedy test points during training (``Budget.train_test_points``): the learning curve is logged as
``train/test/*`` at chunk boundaries up to the end of training, and measuring it changes nothing the
training does (the trained weights are the same bit for bit)."""
from __future__ import annotations

import dataclasses
import os

import pytest


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from ccoma import checkpoint
    from ccoma.experiment import single
    from ccoma.run_config import resolve

    root = tmp_path_factory.mktemp("train_tests")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        uri = f"sqlite:///{root / 'mlflow.db'}"
        out = {"uri": uri}
        for points in (0, 3):
            cfg = resolve("shifting_spawn", "smoke", tracking_uri=uri, report=False, run_dir=str(root / f"runs{points}"))
            cfg = dataclasses.replace(cfg, budget=dataclasses.replace(cfg.budget, train_test_points=points))
            result = single(cfg, "qmix", 0, "train", echo=lambda *_: None)
            out[points] = (result, checkpoint.load(result["checkpoint"])["learner"])
    finally:
        os.chdir(cwd)
    return out


def _series(uri, result, key):
    from ccoma.tracking import Tracker

    client = Tracker(uri).client
    run_id = next(iter(result["methods"].values()))["run_id"]
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


def test_training_logs_a_greedy_test_curve_up_to_its_end(trained):
    result, _ = trained[3]
    wins = _series(trained["uri"], result, "train/test/win_rate")
    returns = _series(trained["uri"], result, "train/test/return")
    steps = [s for s, _ in wins]
    assert len(steps) >= 3 and steps == sorted(set(steps)) and steps[-1] == 3_000 and steps[0] > 0
    assert [s for s, _ in returns] == steps
    assert all(0.0 <= v <= 1.0 for _, v in wins)
    assert not _series(trained["uri"], trained[0][0], "train/test/win_rate")   # 0 points: none


def test_test_points_leave_training_unchanged(trained):
    from weights import different_tensors

    (_, plain), (_, tested) = trained[0], trained[3]
    different = different_tensors(plain, tested)
    assert not different, different
