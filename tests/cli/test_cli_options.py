"""Bad command-line options: one line naming the option, exit 2, nothing logged."""
import pytest
from click.testing import CliRunner

from ccoma.cli import cli


def bad(args, *needles):
    res = CliRunner().invoke(cli, args)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert "Traceback" not in res.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture(autouse=True)
def _here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yield
    assert not (tmp_path / "mlflow.db").exists()  # nothing was logged


EVALUATE = ["evaluate", "--budget", "smoke", "-m", "qmix", "--no-report"]


@pytest.mark.parametrize("args,needles", [
    (EVALUATE + ["--workers", "-3"], ["--workers", "-3"]),
    (EVALUATE + ["--seed", "99999999999999999999"], ["--seed"]),
    (EVALUATE + ["--seed", "-1"], ["--seed"]),
    (EVALUATE + ["--train-steps", "-5"], ["--train-steps"]),
    (EVALUATE + ["--ray-address", "10.0.0.1:6379"], ["--ray-address", "--executor ray"]),
    (EVALUATE + ["--tracking-uri", "garbage://x"], ["--tracking-uri", "garbage://x"]),
    (EVALUATE + ["--tracking-uri", "sqlite:/rel.db"], ["--tracking-uri", "sqlite:///"]),
    (["scenarios", "show", "shifting_spawn", "--train-steps", "-5"], ["--train-steps", "-5"]),
    (["render", "--map", "3m", "--fps", "nan"], ["--fps", "nan"]),
    (["render", "--map", "3m", "--fps", "inf"], ["--fps"]),
    (["render", "--map", "3m", "--every", "0"], ["--every"]),
    (["models", "list", "--scenario", "it's", "--tracking-uri", "sqlite:///other.db"], ["quotes"]),
    (["deploy", "--budget", "smoke", "--checkpoint", "nowhere.pt"], ["--checkpoint", "nowhere.pt"]),
])
def test_bad_option(args, needles):
    bad(args, *needles)


def test_run_dir_that_is_a_file(tmp_path):
    (tmp_path / "runs").write_text("mine")
    bad(EVALUATE + ["--run-dir", "runs"], "--run-dir", "is a file")
    assert (tmp_path / "runs").read_text() == "mine"


def test_folders_that_cannot_be_created(tmp_path):
    (tmp_path / "afile").write_text("x")
    bad(EVALUATE + ["--run-dir", "afile/runs"], "--run-dir", "cannot create")
    bad(["render", "--map", "3m", "--output", "afile/r"], "--output", "cannot create")
    bad(["scenarios", "show", "shifting_spawn", "--output", "afile/t.png"], "--output", "afile")


def test_unwritable_folders(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    bad(EVALUATE + ["--run-dir", str(locked / "runs")], "--run-dir", "cannot create")
    bad(["render", "--map", "3m", "--output", str(locked / "r")], "--output")
    bad(["scenarios", "show", "shifting_spawn", "--output", str(locked / "t.png")], "t.png")


def test_config_hash_of_default_threads_is_unchanged():
    """Runs started before ``threads`` existed resume under the same hash (recorded at 450e6a7)."""
    import dataclasses

    from ccoma.experiment import config_hash
    from ccoma.run_config import resolve

    # torch.gru's unroll: every run before the fused unroll existed (the default since session 35)
    cfg = dataclasses.replace(resolve("shifting_spawn", "smoke", seeds=(0,)), fused_gru=False)
    assert config_hash(cfg) == "6b463de04e"
    assert config_hash(dataclasses.replace(cfg, threads=2)) != "6b463de04e"
    assert config_hash(dataclasses.replace(cfg, fused_gru=True)) != "6b463de04e"   # another computation
    assert resolve("shifting_spawn", "smoke", seeds=(0,)).fused_gru     # the default
    # test points in training (smoke: none) are new series in the same runs: another configuration
    assert config_hash(dataclasses.replace(cfg, budget=dataclasses.replace(cfg.budget, train_test_points=3))) \
        != "6b463de04e"
