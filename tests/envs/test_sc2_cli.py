"""``--backend sc2`` through the command line: a clear exit without the game, and a model trained on the
simulator deployed through the StarCraft II code path (the game replaced by the stand-in controller)."""
import pytest
import torch
from click.testing import CliRunner

from ccoma.cli import cli

TINY = """budget: {n_envs: 2, log_points: 2, eval_points: 1, eval_episodes: 1, checkpoints: 1, buffer_size: 8,
         render_steps: 0}
"""
STEPS = ["--scenario", "2s3z", "--budget", "smoke", "--train-steps", "48", "--deploy-steps", "24"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CCOMA_SC2_CONTROLLER", raising=False)
    monkeypatch.setenv("SC2PATH", str(tmp_path / "no-game-here"))
    (tmp_path / "tiny.yaml").write_text(TINY)
    return tmp_path


@pytest.mark.parametrize("command", [["train"], ["evaluate", "--method", "coma"],
                                     ["deploy", "--checkpoint", "tiny.yaml"]])
def test_sc2_without_the_game_exits_2_before_any_run(workdir, command):
    res = CliRunner().invoke(cli, [*command, *STEPS, "--config", "tiny.yaml", "--backend", "sc2"])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "ccoma doctor" in lines[0] and "Traceback" not in res.output
    assert not (workdir / "mlflow.db").exists() and not (workdir / "mlruns").exists()


def test_render_sc2_without_the_game_exits_2(workdir):
    res = CliRunner().invoke(cli, ["render", "--backend", "sc2", "--output", "r"])
    assert res.exit_code == 2 and "ccoma doctor" in res.output and not (workdir / "r").exists()


def trained_on_sim(path):
    """A COMA learner trained for a few updates on the simulator, saved as a ccoma checkpoint."""
    from ccoma import checkpoint
    from ccoma.algos import registry
    from ccoma.data.buffer import EpisodeBuffer
    from ccoma.data.rollout import Rollout
    from ccoma.envs import make

    torch.manual_seed(0)
    env = make("sim", "2s3z", 4, seed=0)
    learner = registry.make("coma", env.get_env_info(), "cpu",
                            config={"batch_size": 4, "episodes_per_update": 4})
    buf = EpisodeBuffer(learner.scheme(), env.n_agents, env.episode_limit, 4, "cpu")
    updates = []
    # every environment ends an episode within its limit (120 steps): at least one update on 4 episodes
    Rollout(env, learner, buf).run(4 * 121, on_train=lambda info, t: updates.append(info))
    assert updates  # it learned something on the simulator
    checkpoint.save({"format": "ccoma-checkpoint-1", "algo": "coma", "trained": learner.state_dict()}, path)
    return path


def test_model_trained_on_sim_deploys_on_sc2(workdir, sqlite_store, monkeypatch):
    pytest.importorskip("pysc2_evolved")
    import sc2_fake_controller as fake

    from ccoma.tracking import Tracker

    ckpt = trained_on_sim(workdir / "trained.pt")
    monkeypatch.setenv("CCOMA_SC2_CONTROLLER", "sc2_fake_controller:make_controller")
    fake.CONTROLLERS.clear()
    res = CliRunner().invoke(cli, ["deploy", *STEPS, "--config", "tiny.yaml", "--tracking-uri", sqlite_store,
                                   "--backend", "sc2", "--checkpoint", str(ckpt), "--mode", "frozen"])
    assert res.exit_code == 0, res.output
    assert "[sc2 pysc2-evolved 1.1.1]" in res.output and "coma: mean online win rate" in res.output
    # every environment of the deployment was a (stand-in) game that received the agents' raw commands
    assert fake.CONTROLLERS and all(any(k == "actions" for k, _ in c.requests) for c in fake.CONTROLLERS)
    # games are launched once per environment size and reused (reseeded) at every evaluation point:
    # the deployment's 2, one for the probe, matrix rows and pictures, 8 for the greedy test points
    # (28 before evaluation environments were pooled)
    assert len(fake.CONTROLLERS) == 2 + 1 + 8
    tracker = Tracker(sqlite_store)
    runs = tracker.client.search_runs([e.experiment_id for e in tracker.client.search_experiments()],
                                      "tags.`ccoma.kind` = 'deploy'")
    assert len(runs) == 1 and runs[0].data.tags["ccoma.backend"] == "sc2 pysc2-evolved 1.1.1"
    assert runs[0].data.params["backend"] == "sc2 pysc2-evolved 1.1.1"


def test_unknown_backend_in_a_config_file_exits_2(workdir):
    (workdir / "bad.yaml").write_text("backend: starcraft\n")
    res = CliRunner().invoke(cli, ["train", *STEPS, "--config", "bad.yaml"])
    assert res.exit_code == 2 and "unknown backend 'starcraft' (known: sim, sc2)" in res.output
