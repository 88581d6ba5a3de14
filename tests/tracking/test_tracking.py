"""ccoma.tracking against real stores: a sqlite file in tmp_path and a real ``mlflow server``."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import socket
import time
import uuid

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ccoma.tracking import schema
from ccoma.errors import CcomaError
from ccoma.tracking import Tracker, load_frame, model_name

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")




@pytest.fixture(params=["sqlite", "server"])
def store(request, tmp_path, monkeypatch):
    """(tracker, scenario): a fresh ./mlflow.db in tmp_path, or the shared server with a fresh scenario."""
    monkeypatch.chdir(tmp_path)
    if request.param == "sqlite":
        request.getfixturevalue("sqlite_store")
        return Tracker(), "tiny"  # the default store: ./mlflow.db
    return Tracker(request.getfixturevalue("mlflow_server")), f"tiny{uuid.uuid4().hex[:8]}"


CONFIG = {"protocol": {"unseen_from": 200}, "budget": {"train_steps": 1000, "deploy_steps": 500},
          "notes": "x" * 7000}


def _open(tracker, scenario, key="k1", seed=0, method="c-coma"):
    parent = tracker.evaluate_run(scenario, key, backend="ccoma-sim 1.0", budget="smoke", params=CONFIG)
    child = tracker.method_run(parent, method=method, algo="coma", mode="continual", seed=seed,
                               params={**CONFIG, "algo": {"lr": 5e-4}})
    return parent, child


# ---- pure schema -------------------------------------------------------------------------
@dataclasses.dataclass
class _Inner:
    lr: float = 0.1


@dataclasses.dataclass
class _Outer:
    inner: _Inner = dataclasses.field(default_factory=_Inner)
    name: str = "n"


def test_flatten_params_nested_and_truncated():
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    assert schema.MAX_PARAM_VAL_LENGTH == MAX_PARAM_VAL_LENGTH
    flat = schema.flatten_params({"a": {"b": {"c": 3}}, "cfg": _Outer(), "long": "y" * 9000})
    assert flat["a.b.c"] == "3" and flat["cfg.inner.lr"] == "0.1" and flat["cfg.name"] == "n"
    assert len(flat["long"]) == MAX_PARAM_VAL_LENGTH


@pytest.mark.parametrize("key,parsed", [
    ("train/win_rate", ("train", "", "win_rate")), ("deploy/loss/critic", ("deploy", "", "loss/critic")),
    ("eval/seen_mix/return", ("eval", "seen_mix", "return")), ("cl/bwt", ("cl", "", "bwt")),
    ("cl/forgetting/p1", ("cl", "p1", "forgetting")), ("cl/recovery_steps/s", ("cl", "s", "recovery_steps")),
])
def test_parse_key(key, parsed):
    assert schema.parse_key(key) == parsed


# ---- runs, params, metrics, artifacts ---------------------------------------------------------
def test_runs_params_metrics_artifacts(store, tmp_path):
    tracker, scenario = store
    parent, child = _open(tracker, scenario)
    assert parent.tags["ccoma.kind"] == "evaluate" and parent.tags["ccoma.backend"] == "ccoma-sim 1.0"
    got = tracker.client.get_run(child.run_id)
    assert got.data.tags["mlflow.parentRunId"] == parent.run_id
    assert {k: got.data.tags[k] for k in ("ccoma.method", "ccoma.algo", "ccoma.mode", "ccoma.seed",
                                          "ccoma.status")} == {
        "ccoma.method": "c-coma", "ccoma.algo": "coma", "ccoma.mode": "continual", "ccoma.seed": "0",
        "ccoma.status": "running"}
    assert got.data.params["protocol.unseen_from"] == "200" and got.data.params["algo.lr"] == "0.0005"
    assert len(got.data.params["notes"]) == schema.MAX_PARAM_VAL_LENGTH

    # 2500 points: more than one log_batch chunk
    steps = np.arange(2500) * 8
    assert child.log_series(("deploy/win_rate", s / 20000, s) for s in steps) == 2500
    child.log_metrics({"eval/seen/win_rate": 0.5, "cl/forgetting/seen": 0.1}, step=400)
    history = tracker.client.get_metric_history(child.run_id, "deploy/win_rate")
    assert sorted(m.step for m in history) == steps.tolist()

    (tmp_path / "cfg.yaml").write_text("a: 1\n")
    (tmp_path / "figs").mkdir()
    (tmp_path / "figs" / "f.png").write_bytes(b"png")
    child.log_artifact(tmp_path / "cfg.yaml", "config")
    child.log_artifact(tmp_path / "figs", "figures")
    listed = {a.path for p in ("config", "figures") for a in tracker.client.list_artifacts(child.run_id, p)}
    assert listed == {"config/cfg.yaml", "figures/f.png"}
    with pytest.raises(CcomaError):
        child.log_artifact(tmp_path / "missing.txt", "config")

    child.finish("finished")
    assert tracker.client.get_run(child.run_id).info.status == "FINISHED"

    frame = load_frame(scenario, tracker.uri)
    assert list(frame.columns) == schema.FRAME_COLUMNS
    win = frame[frame.key == "deploy/win_rate"].sort_values("step")
    assert win.step.tolist() == steps.tolist() and np.allclose(win.value, steps / 20000)
    assert set(win.method) == {"c-coma"} and set(win.status) == {"finished"} and set(win["mode"]) == {"continual"}
    cl = frame[frame.namespace == "cl"].iloc[0]
    assert (cl.phase, cl.metric, cl.step) == ("seen", "forgetting", 400)
    runs = tracker.reader.load_runs(scenario)
    assert runs[runs.kind == "method"].unseen_from.tolist() == [200]


def test_context_manager_marks_failed(store):
    tracker, scenario = store
    _, child = _open(tracker, scenario)
    with pytest.raises(RuntimeError):
        with child:
            raise RuntimeError("boom")
    got = tracker.client.get_run(child.run_id)
    assert got.info.status == "FAILED" and got.data.tags["ccoma.status"] == "failed"


def test_resume_finds_runs_and_last_steps(store):
    tracker, scenario = store
    parent, child = _open(tracker, scenario)
    child.log_series([("train/win_rate", 0.1 * i, 100 * i) for i in range(6)] + [("train/return", 1.0, 250)])
    child.finish("interrupted")

    again = Tracker(tracker.uri)  # a new process would build a new Tracker
    parent2, child2 = _open(again, scenario)
    assert (parent2.run_id, child2.run_id) == (parent.run_id, child.run_id)
    assert parent2.resumed and child2.resumed and child2.previous_status == "interrupted"
    assert parent2.previous_status == "running"  # the parent was never finished
    assert child2.last_steps == {"train/win_rate": 500, "train/return": 250}
    assert again.client.get_run(child2.run_id).info.status == "RUNNING"
    # re-logging already-logged steps writes nothing; new steps go through
    assert child2.log_series([("train/win_rate", 0.9, 400), ("train/win_rate", 0.7, 600)]) == 1
    assert len(again.client.get_metric_history(child2.run_id, "train/win_rate")) == 7
    with pytest.raises(CcomaError, match="protocol.unseen_from"):
        child2.log_params({"protocol": {"unseen_from": 300}})
    other = again.method_run(parent2, method="c-coma", algo="coma", mode="continual", seed=1)
    assert other.run_id != child.run_id and not other.resumed
    new_parent = again.evaluate_run(scenario, "k2", backend="ccoma-sim 1.0", budget="smoke")
    assert new_parent.run_id != parent.run_id
    opened = again.open_run(child.run_id)  # by id, as it is: a job reopening its parent does this
    assert (opened.run_id, opened.tags["ccoma.method"], opened.last_steps["train/win_rate"]) == \
        (child.run_id, "c-coma", 600)
    assert opened.resumed and again.client.get_run(child.run_id).info.status == "RUNNING"


# ---- model registry --------------------------------------------------------------------------
def _policy(tmp_path, seed):
    from ccoma.algos.networks import RNNAgent, agent_input_dim
    from ccoma.serving import save_policy

    torch.manual_seed(seed)
    obs_dim, n_actions, n_agents = 6, 5, 3
    net = RNNAgent(agent_input_dim(obs_dim, n_actions, n_agents), n_actions, hidden_dim=16)
    path = save_policy(net, tmp_path / f"policy{seed}", obs_dim=obs_dim, n_agents=n_agents, algo="coma")
    return net, path


def _expected_actions(net, obs, avail):
    # independent of ccoma.serving: first step, zero hidden, no last action
    b, n, _ = obs.shape
    inputs = torch.cat([obs, torch.zeros(b, n, net.fc2.out_features), torch.eye(n).expand(b, n, n)], -1)
    out, _ = net(inputs, torch.zeros(b, n, net.hidden_dim))
    return out.masked_fill(~avail, float("-inf")).argmax(-1).numpy()


def test_registry_champion_and_pyfunc_predict(store, tmp_path):
    import mlflow.pyfunc
    import pandas as pd

    tracker, scenario = store
    parent, _ = _open(tracker, scenario)
    nets, run_ids = {}, []
    for seed, rate in [(0, 0.3), (1, 0.7), (2, 0.5)]:
        run = tracker.method_run(parent, method="c-coma", algo="coma", mode="continual", seed=seed)
        run_ids.append(run.run_id)
        nets[seed], path = _policy(tmp_path, seed)
        assert tracker.registry.register(run, scenario=scenario, method="c-coma", policy_dir=path,
                                         deploy_win_rate=rate, seed=seed) == seed + 1
    name = model_name(scenario, "c-coma")
    # the logged models live in the scenario's experiment, next to their runs
    logged = tracker.client.search_logged_models([parent.experiment_id])
    assert sorted(m.source_run_id for m in logged) == sorted(run_ids)
    rows = tracker.registry.list_models(scenario)
    assert [(r["version"], r["aliases"]) for r in rows] == [(1, []), (2, ["champion"]), (3, [])]

    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(8, 3, 6, generator=gen)
    avail = torch.rand(8, 3, 5, generator=gen) > 0.5
    avail[..., 0] |= ~avail.any(-1)  # at least one available action each
    # registering left the process's default store alone; a user points mlflow at the store to load
    assert os.environ.get("MLFLOW_TRACKING_URI") is None and os.environ.get("MLFLOW_REGISTRY_URI") is None
    mlflow.set_tracking_uri(tracker.uri)
    mlflow.set_registry_uri(tracker.uri)
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    actions = model.predict({"obs": obs.numpy(), "avail": avail.numpy().astype(np.float32)})
    assert actions.shape == (8, 3)
    assert avail.gather(-1, torch.as_tensor(actions).unsqueeze(-1)).all()
    np.testing.assert_array_equal(actions, _expected_actions(nets[1], obs, avail))
    frame_in = pd.DataFrame({"obs": list(obs.numpy()), "avail": list(avail.numpy())})
    np.testing.assert_array_equal(model.predict(frame_in), actions)
    assert model.predict({"obs": np.zeros((2, 4, 3, 6), np.float32)}).shape == (2, 4, 3)

    tracker.registry.promote(name, 1)
    assert [r["aliases"] for r in tracker.registry.list_models(scenario)] == [["champion"], [], []]
    with pytest.raises(CcomaError, match="no version 9"):
        tracker.registry.promote(name, 9)


def test_models_cli(store, tmp_path):
    from ccoma.cli import cli

    tracker, scenario = store
    parent, run = _open(tracker, scenario)
    _, path = _policy(tmp_path, 0)
    tracker.registry.register(run, scenario=scenario, method="c-coma", policy_dir=path, deploy_win_rate=0.42)
    runner = CliRunner()
    out = runner.invoke(cli, ["models", "list", "--scenario", scenario, "--tracking-uri", tracker.uri])
    assert out.exit_code == 0 and "0.420" in out.output and "champion" in out.output
    out = runner.invoke(cli, ["models", "promote", model_name(scenario, "c-coma"), "3",
                              "--tracking-uri", tracker.uri])
    assert out.exit_code == 2 and "no version 3" in out.output


# ---- failures --------------------------------------------------------------------------------
def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_is_one_line_error_quickly():
    from ccoma.cli import cli

    uri = f"http://127.0.0.1:{_dead_port()}"
    start = time.monotonic()
    with pytest.raises(CcomaError, match="unreachable") as err:
        Tracker(uri)
    assert time.monotonic() - start < 10 and "\n" not in str(err.value)
    out = CliRunner().invoke(cli, ["models", "list", "--tracking-uri", uri])
    assert out.exit_code == 2 and out.output.count("\n") == 1 and "unreachable" in out.output


def test_a_failing_command_ends_only_its_own_runs(tmp_path):
    """A command that fails marks the runs it opened FAILED, not runs the process held before it (a
    caller's, or in one pytest worker an earlier test's)."""
    from ccoma.cli import cli
    from ccoma.store_guard import OPEN_RUNS

    tracker = Tracker(f"sqlite:///{tmp_path / 'mine.db'}")
    mine = tracker.evaluate_run("2s3z", "caller", backend="ccoma-sim 1.0", budget="smoke")
    assert mine.run_id in OPEN_RUNS
    out = CliRunner().invoke(cli, ["models", "list", "--tracking-uri", f"http://127.0.0.1:{_dead_port()}"])
    assert out.exit_code == 2 and "unreachable" in out.output
    assert mine.run_id in OPEN_RUNS and tracker.client.get_run(mine.run_id).info.status == "RUNNING"
    out = CliRunner().invoke(cli, ["evaluate", "--budget", "smoke", "-m", "no-such-method",
                                   "--tracking-uri", f"sqlite:///{tmp_path / 'mine.db'}"])
    assert out.exit_code == 2 and tracker.client.get_run(mine.run_id).info.status == "RUNNING"
    mine.finish("finished")
    assert tracker.client.get_run(mine.run_id).info.status == "FINISHED"


def test_default_store_is_sqlite_in_cwd(tmp_path, monkeypatch):
    from ccoma.tracking import resolve_uri

    monkeypatch.chdir(tmp_path)
    assert resolve_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://h:1/")
    assert resolve_uri() == "http://h:1" and resolve_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_load_frame_of_unknown_scenario_is_empty(sqlite_store):
    frame = load_frame(["nothing_here"])
    assert frame.empty and list(frame.columns) == schema.FRAME_COLUMNS


def test_two_commands_opening_a_new_store_at_once(tmp_path):
    """Two processes that create the same new mlflow.db together (two `ccoma train` side by side):
    MLflow's schema migrations must not run twice at once (one of them used to die inside alembic)."""
    code = ("import sys; from ccoma.tracking import Tracker\n"
            "t = Tracker(sys.argv[1]); print('EXP', t.experiment_id('race_' + sys.argv[2]))")
    # round 0 runs the migrations (an empty template cache), round 1 copies their kept result
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "CCOMA_CACHE_DIR": str(tmp_path / "cache")}
    for attempt in range(2):
        uri = f"sqlite:///{tmp_path / f'round{attempt}' / 'mlflow.db'}"
        procs = [subprocess.Popen([sys.executable, "-c", code, uri, str(i)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env) for i in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0 and "EXP" in out, err[-2000:]


def _schema(db) -> list:
    import sqlite3

    con = sqlite3.connect(db)
    try:
        # MLflow's migrations list a table's CHECK constraints in a varying order: compare the lines
        tables = [(kind, name, sorted(line.strip().rstrip(",") for line in (sql or "").splitlines()))
                  for kind, name, sql in con.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")]
        rows = {t: con.execute(f'SELECT * FROM "{t}"').fetchall() for kind, t, _ in tables
                if kind == "table" and t not in ("experiments", "sqlite_sequence")}
        exps = con.execute("SELECT experiment_id, name, artifact_location, lifecycle_stage FROM experiments").fetchall()
        return [tables, rows, exps]
    finally:
        con.close()


def test_a_new_store_from_the_template_is_the_migrated_store(tmp_path, monkeypatch):
    """A new mlflow.db is a copy of the empty store the first migration left (not a second ~2-5 s of
    migrations): every table, index, alembic revision and row the same as a migrated store's, with the
    Default experiment at this store's own place; a damaged template is migrated over and replaced."""
    from ccoma.tracking.store import _template_path

    monkeypatch.setenv("CCOMA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    Tracker(f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}")  # migrates, keeps the template
    template = _template_path()
    assert template.is_file() and _schema(template)[2] == []  # no experiment in the template
    monkeypatch.setenv("CCOMA_STORE_TEMPLATE", "0")
    Tracker(f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}")  # migrated, not copied
    monkeypatch.delenv("CCOMA_STORE_TEMPLATE")
    stamp = template.stat().st_mtime_ns
    Tracker(f"sqlite:///{tmp_path / 'c' / 'mlflow.db'}")  # copied
    assert template.stat().st_mtime_ns == stamp
    migrated, copied = _schema(tmp_path / "b" / "mlflow.db"), _schema(tmp_path / "c" / "mlflow.db")
    assert migrated == copied and migrated[1]["alembic_version"]
    assert copied[2] == [(0, "Default", str(tmp_path / "mlruns" / "0"), "active")]
    t = Tracker(f"sqlite:///{tmp_path / 'c' / 'mlflow.db'}")
    assert t.experiment_id("s1") == "1"  # ids continue as in a migrated store
    template.write_bytes(b"not a database")
    Tracker(f"sqlite:///{tmp_path / 'd' / 'mlflow.db'}")
    assert _schema(tmp_path / "d" / "mlflow.db") == migrated and _schema(template)[2] == []
