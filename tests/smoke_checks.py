"""Checks of a store written by a smoke-budget ``ccoma evaluate`` (tests/cli and tests/analysis share them)."""
import numpy as np

from ccoma.run_config import BUDGETS


def series(frame, method, metric, seed=None):
    rows = frame[(frame.method == method) & (frame.key == metric)]
    if seed is not None:
        rows = rows[rows.seed.astype(int) == seed]
    rows = rows.sort_values("step")
    return list(zip(rows.step.tolist(), rows.value.tolist()))


def check_store(uri, methods, scenario="shifting_spawn", exclude_suffix=None, steps_per_stage=3000):
    from ccoma.tracking import Tracker, load_frame

    frame = load_frame(scenario, tracking_uri=uri)
    if exclude_suffix:  # e.g. the from-scratch reference runs, checked by the caller
        frame = frame[~frame.method.str.endswith(exclude_suffix)]
    assert set(frame.method.unique()) == set(methods)
    for m in methods:
        for seed in sorted(frame[frame.method == m].seed.astype(int).unique()):
            for key in ("train/win_rate", "train/return", "deploy/win_rate", "deploy/return",
                        "deploy/test/win_rate", "deploy/test/return",
                        "eval/known_sites/win_rate", "eval/new_sites/win_rate", "cl/avg_performance"):
                assert series(frame, m, key, seed), f"{m} seed {seed} has no {key}"
            steps = [s for s, _ in series(frame, m, "deploy/win_rate", seed)]
            assert steps == sorted(set(steps)) and steps[-1] == steps_per_stage
            evals = [s for s, _ in series(frame, m, "eval/new_sites/win_rate", seed)]
            assert evals[0] == 0 and evals[-1] == steps_per_stage
            tests = [s for s, _ in series(frame, m, "deploy/test/win_rate", seed)]
            assert tests[0] == 0 and tests[-1] == steps_per_stage and len(tests) >= BUDGETS["smoke"].test_points + 1
    tracker = Tracker(uri)
    runs = tracker.reader.load_runs(scenario)
    assert set(runs.status) == {"finished"}
    runs = runs[runs.kind == "method"]
    if exclude_suffix:
        runs = runs[~runs.method.str.endswith(exclude_suffix)]
    parent_id = runs.parent_run_id.iloc[0]
    parent = tracker.client.get_run(parent_id)
    assert parent.data.params["budget.train_steps"] == str(steps_per_stage)
    # unseen situations from 200K of 1M deployment steps, rescaled
    assert parent.data.params["protocol.unseen_from"] == str(steps_per_stage // 5)
    assert parent.data.tags["ccoma.backend"].startswith("ccoma-sim")
    arts = {a.path for a in tracker.client.list_artifacts(parent_id)}
    assert {"config", "scenario"} <= arts
    child = runs[runs.method == methods[0]].run_id.iloc[0]
    params = tracker.client.get_run(child).data.params
    assert params["method"] == methods[0] and params["budget.n_envs"] == "8"
    models = {r["name"]: r for r in tracker.registry.list_models(scenario) if "champion" in r["aliases"]}
    assert set(models) == {f"ccoma-{scenario}-{m}" for m in methods}
    return frame


def predict_champion(uri, name):
    import mlflow.pyfunc

    from ccoma.sim.env import SimEnv

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    env = SimEnv.from_map("dynamic_5v5", n_envs=3)
    env.reset()
    obs, avail = env.get_obs().numpy(), env.get_avail_actions().numpy()
    actions = np.asarray(model.predict({"obs": obs, "avail": avail}))
    assert actions.shape == (3, 5)
    assert avail[np.arange(3)[:, None], np.arange(5)[None, :], actions].all()
