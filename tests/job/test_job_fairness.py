"""The fair comparison, shown through the harness: on-policy COMA, the deployment's exploration
level, greedy test curves measured alike, parameter budgets logged."""
from __future__ import annotations

import dataclasses

import pytest

from ccoma.algos.coma import COMALearner
from ccoma.run_config import BUDGETS


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    """A real ``ccoma train`` of COMA (smoke budget) and a continual deployment of its checkpoint
    under a budget whose training length differs, with every COMA update's episode ids recorded."""
    import os

    from ccoma.experiment import single
    from ccoma.run_config import resolve

    root = tmp_path_factory.mktemp("fair")
    cwd = os.getcwd()
    os.chdir(root)
    updates: list[list[int]] = []
    original = COMALearner.train_step

    def recording(self, batch, t_env, episode=None):
        updates.append(batch["episode_id"].tolist())
        return original(self, batch, t_env, episode)

    COMALearner.train_step = recording
    try:
        uri = f"sqlite:///{root / 'mlflow.db'}"
        cfg = resolve("shifting_spawn", "smoke", tracking_uri=uri, report=False, run_dir=str(root / "runs"))
        trained = single(cfg, "coma", 0, "train", echo=lambda *_: None)
        n_train = len(updates)
        # a deployment budget that claims a much longer training: exploration must not follow it
        deploy_cfg = dataclasses.replace(cfg, budget=dataclasses.replace(cfg.budget, train_steps=90_000))
        deployed = single(deploy_cfg, "coma", 0, "deploy", mode="continual", init_from=trained["checkpoint"],
                          echo=lambda *_: None)
    finally:
        COMALearner.train_step = original
        os.chdir(cwd)
    return dict(updates=updates, n_train=n_train, trained=trained, deployed=deployed, uri=uri)


def _check_on_policy(updates):
    assert len(updates) >= 3, "too few updates to say anything"
    seen = -1
    for ids in updates:
        assert min(ids) > seen, f"an update reused an episode it had seen before: {ids} (newest before {seen})"
        assert ids == list(range(ids[0], ids[0] + len(ids))), f"not the consecutive newest episodes: {ids}"
        assert len(ids) >= 8  # COMA's batch: at least 8 new episodes
        seen = max(ids)


def test_every_coma_update_uses_only_episodes_since_the_previous_one(harness):
    _check_on_policy(harness["updates"][: harness["n_train"]])          # training
    _check_on_policy(harness["updates"][harness["n_train"]:])           # continual deployment


def test_deployment_explores_at_the_level_training_ended(harness):
    from ccoma.tracking import Tracker

    from ccoma.algos.base import linear_schedule
    from ccoma.algos.coma import COMAConfig

    c = COMAConfig()
    expected = linear_schedule(c.epsilon_start, c.epsilon_finish, c.epsilon_anneal_steps, 3_000)  # smoke: 3K
    run_id = harness["deployed"]["methods"]["c-coma"]["run_id"]
    client = Tracker(harness["uri"]).client
    eps = [m.value for m in client.get_metric_history(run_id, "deploy/loss/epsilon")]
    assert eps and all(abs(e - expected) < 1e-9 for e in eps), (eps, expected)
    assert f"deployed at {expected:.4g}" in client.get_run(run_id).data.params["exploration"]
    # the checkpoint carries the level: an older one without it would deploy at the final level
    from ccoma import checkpoint

    state = checkpoint.load(harness["trained"]["checkpoint"])
    assert state["trained_t"] == 3_000


def test_greedy_test_curve_and_parameter_budgets_are_logged(harness):
    from ccoma.tracking import Tracker

    run_id = harness["deployed"]["methods"]["c-coma"]["run_id"]
    client = Tracker(harness["uri"]).client
    steps = [m.step for m in client.get_metric_history(run_id, "deploy/test/win_rate")]
    assert steps[0] == 0 and steps[-1] == 3_000 and len(steps) >= BUDGETS["smoke"].test_points + 1
    params = client.get_run(run_id).data.params
    live, total = int(params["params.trainable"]), int(params["params.total"])
    assert 0 < live < total
    assert live == int(params["params.trainable.agent"]) + int(params["params.trainable.critic"])
