"""Bad input: one clear line on stderr, a non-zero exit, no traceback, nothing already logged lost."""
import os
import socket
import subprocess
import sys
import time

import pytest


def run(args, cwd, timeout=120):
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.run([sys.executable, "-m", "ccoma.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def one_line_error(res, *needles):
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("args,needles", [
    (["--scenario", "no_such_scenario"], ["no_such_scenario", "shipped scenarios", "shifting_spawn"]),
    (["--method", "c-dqn"], ["unknown method 'c-dqn'", "c-coma"]),
    (["--budget", "huge"], ["unknown budget 'huge'", "smoke"]),
    (["--budget", "smoke", "--train-steps", "0"], ["--train-steps", "range"]),
    (["--budget", "smoke", "--deploy-steps", "-100"], ["--deploy-steps", "range"]),
    (["--budget", "smoke", "--train-steps", "50"], ["cannot hold"]),
    (["--budget", "smoke", "--executor", "ray", "--ray-address", "127.0.0.1:1", "--method", "qmix"], ["Ray"]),
])
def test_bad_evaluate_input(tmp_path, args, needles):
    res = run(["evaluate", *args], tmp_path)
    if "--executor" in args:
        pytest.importorskip("ray")
    one_line_error(res, *needles)


def test_bad_config_file(tmp_path):
    (tmp_path / "c.yaml").write_text("methods: [qmix]\nbudgett: {n_envs: 2}\n")
    one_line_error(run(["evaluate", "--budget", "smoke", "--config", "c.yaml"], tmp_path), "c.yaml", "budgett")


def test_unreachable_tracking_server_fails_fast(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    res = run(["evaluate", "--budget", "smoke", "-m", "qmix", "--tracking-uri", f"http://127.0.0.1:{port}"], tmp_path)
    one_line_error(res, f"127.0.0.1:{port}")
    assert time.monotonic() - start < 30
    assert not (tmp_path / "mlflow.db").exists()


def test_corrupt_checkpoint_on_resume_keeps_what_was_logged(tmp_path):
    from ccoma.tracking import load_frame

    args = ["evaluate", "--budget", "smoke", "--no-report", "-m", "vdn", "--seed", "0", "--train-steps", "600",
            "--deploy-steps", "600"]
    assert run(args, tmp_path, timeout=300).returncode == 0
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    before = load_frame("shifting_spawn", tracking_uri=uri)
    ckpt = next((tmp_path / "ccoma_runs").glob("*/vdn-seed0/checkpoint.pt"))
    ckpt.write_bytes(b"\x00not a checkpoint" * 10)
    line = one_line_error(run(args + ["--resume"], tmp_path), "checkpoint", "corrupt")
    assert str(ckpt.name) in line
    after = load_frame("shifting_spawn", tracking_uri=uri)
    assert len(after) == len(before) and set(after.key) == set(before.key)


def test_resume_without_earlier_run(tmp_path):
    one_line_error(run(["evaluate", "--budget", "smoke", "-m", "qmix", "--resume"], tmp_path), "--resume")


def test_help_is_fast_and_lists_commands(tmp_path):
    res = run(["--help"], tmp_path)
    assert res.returncode == 0
    for cmd in ("evaluate", "report", "scenarios", "models", "render", "maps"):
        assert cmd in res.stdout
    # no heavy library is imported to print help
    code = ("import sys; from ccoma.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'mlflow', 'pandas', 'seaborn', 'ray', 'avalanche') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_bad_budget_key_in_config_file(tmp_path):
    (tmp_path / "c.yaml").write_text("budget: {n_envz: 3}\n")
    one_line_error(run(["evaluate", "--budget", "smoke", "--config", "c.yaml"], tmp_path), "budget.n_envz")


@pytest.mark.parametrize("config,needles", [
    ("algo: {qmix: {nope: 1}}", ["c.yaml", "algo.qmix.nope"]),
    ("algo: {qmax: {lr: 0.1}}", ["c.yaml", "unknown algorithm 'qmax'"]),
    ("algo: {coma: {lr: fast}}", ["c.yaml", "algo.coma.lr"]),
    ("sim: {nope: 1}", ["c.yaml", "sim.nope"]),
    ("continual: {trainable: {agent: ['zzz*']}}", ["continual.trainable", "zzz*"]),
    ("device: tpu", ["--device", "tpu"]),
    ("threads: 0", ["--threads", "at least 1"]),
    ("threads: two", ["c.yaml", "'threads'", "'two'"]),
])
def test_bad_override_fails_before_any_run_is_logged(tmp_path, monkeypatch, config, needles):
    """Every override is checked by resolve: one line naming the key, exit 2, no MLflow store created."""
    from click.testing import CliRunner

    from ccoma.cli import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(config + "\n")
    res = CliRunner().invoke(cli, ["evaluate", "--budget", "smoke", "-m", "c-coma", "-m", "c-qmix",
                                   "--config", "c.yaml"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and all(n in lines[0] for n in needles), res.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "ccoma_runs").exists()


def test_cuda_device_without_cuda_fails_before_any_run(tmp_path, monkeypatch):
    import torch
    from click.testing import CliRunner

    from ccoma.cli import cli

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["evaluate", "--budget", "smoke", "-m", "qmix", "--device", "cuda"])
    assert res.exit_code == 2 and "CUDA is not available" in res.stderr
    assert not (tmp_path / "mlflow.db").exists()
