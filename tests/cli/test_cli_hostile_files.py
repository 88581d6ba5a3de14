"""Hostile or damaged checkpoints and policy folders: one line, exit 2, nothing run or written."""
import json

import pytest
import torch
from click.testing import CliRunner

from ccoma.cli import cli


def invoke(*args):
    res = CliRunner().invoke(cli, list(args))
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and "Traceback" not in res.output, res.output
    return lines[0]


@pytest.fixture
def trained(tmp_path, monkeypatch):
    """A real checkpoint (ccoma.checkpoint.save) of a trained VDN learner."""
    from ccoma import checkpoint
    from ccoma.algos import registry
    from ccoma.sim.env import SimEnv

    monkeypatch.chdir(tmp_path)
    learner = registry.make("vdn", SimEnv.from_map("dynamic_5v5", n_envs=1).get_env_info(), "cpu")
    path = tmp_path / "trained.pt"
    checkpoint.save({"format": "ccoma-checkpoint-1", "algo": "vdn", "learner": learner.state_dict(),
                     "trained": learner.state_dict()}, path)
    assert checkpoint.load(path)["algo"] == "vdn"
    return path


def test_checkpoint_with_flipped_bytes_is_refused_before_anything_runs(trained, tmp_path):
    data = bytearray(trained.read_bytes())
    middle = len(data) // 2
    for i in range(middle, middle + 64):  # inside the tensor data
        data[i] ^= 0xFF
    trained.write_bytes(bytes(data))
    line = invoke("deploy", "--budget", "smoke", "--algo", "vdn", "--checkpoint", str(trained))
    assert "trained.pt" in line and "sha256" in line
    assert not (tmp_path / "mlflow.db").exists()  # no run was created


def test_checkpoint_of_another_learner_is_refused_before_anything_runs(trained, tmp_path):
    line = invoke("deploy", "--budget", "smoke", "--algo", "coma", "--checkpoint", str(trained))
    assert "holds a 'vdn' learner" in line and not (tmp_path / "mlflow.db").exists()


def _policy_dir(tmp_path):
    from ccoma.algos.networks import RNNAgent, agent_input_dim
    from ccoma.serving import save_policy
    from ccoma.sim.env import SimEnv

    info = SimEnv.from_map("2s3z", n_envs=1).get_env_info()
    n_actions, n_agents = info["n_actions"], info["n_agents"]
    net = RNNAgent(agent_input_dim(info["obs_shape"], n_actions, n_agents), n_actions, 16)
    return save_policy(net, tmp_path / "policy", obs_dim=info["obs_shape"], n_agents=n_agents, algo="vdn")


def _edit(path, **changes):
    spec = json.loads((path / "policy.json").read_text())
    spec.update(changes)
    (path / "policy.json").write_text(json.dumps(spec))


@pytest.mark.parametrize("case", ["function", "extra kwarg", "string size", "weights changed", "not json",
                                  "empty folder"])
def test_hostile_policy_folder(tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    pol = _policy_dir(tmp_path)
    target = tmp_path / "written_by_policy.pt"
    spec = json.loads((pol / "policy.json").read_text())
    if case == "function":  # the exploit: a policy.json that makes serving call checkpoint.save
        _edit(pol, **{"class": "ccoma.checkpoint.save", "kwargs": {"state": {}, "path": str(target)}})
    elif case == "extra kwarg":
        _edit(pol, kwargs={**spec["kwargs"], "path": str(target)})
    elif case == "string size":
        _edit(pol, kwargs={**spec["kwargs"], "hidden_dim": "16"})
    elif case == "weights changed":
        state = torch.load(pol / "agent.pt", weights_only=True)
        torch.save({k: v + 1 for k, v in state.items()}, pol / "agent.pt")
    elif case == "not json":
        (pol / "policy.json").write_bytes(b"\xff\xfe{{{")
    else:
        for f in pol.iterdir():
            f.unlink()
    line = invoke("render", "--map", "2s3z", "--steps", "2", "--no-gif", "--checkpoint", str(pol))
    assert str(pol) in line
    assert not target.exists() and not (tmp_path / "renders").exists()
    line = invoke("deploy", "--budget", "smoke", "--algo", "vdn", "--checkpoint", str(pol))
    assert str(pol) in line and not (tmp_path / "mlflow.db").exists()


def test_a_good_policy_folder_renders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pol = _policy_dir(tmp_path)
    res = CliRunner().invoke(cli, ["render", "--map", "2s3z", "--steps", "2", "--no-gif", "--checkpoint", str(pol)])
    assert res.exit_code == 0, res.output


def test_a_policy_for_other_teams_is_refused_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pol = _policy_dir(tmp_path)  # 2s3z's sizes; shifting_spawn fights 5 v 5 on dynamic_5v5
    line = invoke("deploy", "--budget", "smoke", "--algo", "vdn", "--checkpoint", str(pol))
    assert "does not fit" in line and "shifting_spawn" in line and not (tmp_path / "mlflow.db").exists()
