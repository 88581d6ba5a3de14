"""Shared fixtures.

``mlflow_server``: a real ``mlflow server`` on 127.0.0.1 (session-scoped), yields its URI.
``logged_runs``: an MLflow store holding one realistic ``evaluate`` (6 methods x 2 seeds). Until the
harness exists it is synthetic (tests/synthetic_runs.py); swap its body for a smoke-budget
``ccoma evaluate`` run later; the tests only rely on the returned ``LoggedRuns`` fields.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/ helpers (synthetic_runs) importable

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def pytest_configure(config):
    # the tests run small tensors: one intra-op thread is faster, and immune to a busy second core
    import torch

    torch.set_num_threads(1)
    config.addinivalue_line("markers", "xdist_group(name): run on one pytest-xdist worker (set by conftest)")


# Expensive fixtures shared by several tests (a real smoke evaluate, an uninterrupted reference run).
# Under pytest-xdist (README's test command, `-n 2 --dist loadgroup`) the tests that use one of them
# go to the same worker, so the fixture is built once, not once per worker.
SHARED_FIXTURES = ("smoke_evaluate", "uninterrupted")


def pytest_itemcollected(item):
    # at collection, before any pytest_collection_modifyitems (xdist reads the groups in its own)
    used = [f for f in SHARED_FIXTURES if f in getattr(item, "fixturenames", ())]
    if used:
        item.add_marker(pytest.mark.xdist_group(used[0]))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Say so when xdist's loadgroup did not take the groups (it marks a grouped test's id with
    '@group'; on pytest 9.2 it silently does not, pytest-xdist issue #1386, hence setup.py's pin)."""
    if os.environ.get("PYTEST_XDIST_WORKER") != "gw0" or not config.getvalue("loadgroup"):
        return
    grouped = [i for i in items if i.get_closest_marker("xdist_group")]
    if grouped and not any("@" in i.nodeid for i in grouped):
        import warnings

        warnings.warn(pytest.PytestWarning("pytest-xdist did not group the tests sharing an expensive fixture "
                                           "(pytest-xdist #1386): each worker builds it"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(uri: str, proc: subprocess.Popen, timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """URI of a real MLflow tracking server (sqlite backend, proxied artifacts) for this session."""
    root = tmp_path_factory.mktemp("mlflow_server")
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true",
           "HOME": str(root), "TMPDIR": str(root)}
    log = open(root / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True)
    try:
        if not _wait_healthy(uri, proc):
            tail = (root / "server.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"mlflow server did not become healthy on {uri}:\n{tail}")
        yield uri
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its workers
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory):
    """An empty, already-migrated MLflow sqlite store (creating one costs ~5 s of migrations)."""
    from ccoma.tracking import Tracker

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(path.parent)  # the store's Default experiment roots its artifacts in the cwd
        Tracker(f"sqlite:///{path}").experiment_id("template", create=False)
    return path


@pytest.fixture
def sqlite_store(tmp_path, monkeypatch, _sqlite_template):
    """A fresh ./mlflow.db in tmp_path (the working directory for the test); yields its URI."""
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copyfile(_sqlite_template, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def logged_runs(sqlite_store):
    """A sqlite store in tmp_path holding one synthetic evaluate of scenario "shifting_spawn"."""
    from synthetic_runs import log_evaluate

    return log_evaluate(sqlite_store, scenario="shifting_spawn")


@pytest.fixture(scope="session")
def smoke_evaluate(tmp_path_factory):
    """A real ``ccoma evaluate --budget smoke`` of the paper's six methods x 2 seeds (report included),
    run once per test session in its own directory; yields (root, uri, stdout)."""
    from types import SimpleNamespace

    root = tmp_path_factory.mktemp("smoke_evaluate")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "HOME": str(root), "PYTHONUNBUFFERED": "1"}
    res = subprocess.run([sys.executable, "-m", "ccoma.cli", "evaluate", "--budget", "smoke", "--seed", "0",
                          "--seed", "1", "--workers", "2"], cwd=root, capture_output=True, text=True, env=env,
                         timeout=900)
    if res.returncode != 0:
        pytest.fail(f"smoke evaluate failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return SimpleNamespace(root=root, uri=f"sqlite:///{root / 'mlflow.db'}", stdout=res.stdout)


_STORE_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@pytest.fixture(autouse=True, scope="session")
def _no_store_from_the_shell():
    """A store named in the developer's environment is not the tests' store (module and session
    fixtures run before the per-test clean-up below)."""
    for var in _STORE_VARS:
        os.environ.pop(var, None)


@pytest.fixture(autouse=True)
def _no_inherited_tracking_uri():
    """mlflow.set_tracking_uri() / set_registry_uri() export $MLFLOW_TRACKING_URI / $MLFLOW_REGISTRY_URI;
    keep one test's store out of the next test (and out of the ccoma subprocesses it starts)."""
    for var in _STORE_VARS:
        os.environ.pop(var, None)
    yield
    for var in _STORE_VARS:
        os.environ.pop(var, None)


@pytest.fixture
def critic_walks(monkeypatch):
    """The step count of each call of COMA's C critic walk (``fused_critic.walk``) from here on. The
    library is loaded first (where it can be), so that its self-check's walks are not counted."""
    from ccoma.algos import fused_critic, fused_gru

    with fused_gru.use_fused(True):
        fused_critic.status()
    walks = []
    real = fused_critic.walk
    monkeypatch.setattr(fused_critic, "walk", lambda hand, steps, *a: walks.append(len(steps)) or real(hand, steps, *a))
    return walks
