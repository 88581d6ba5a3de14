"""Contract tests parametrised over every registered method and every env backend."""
import dataclasses
import io

import pytest
import torch

from ccoma.algos import registry
from ccoma.config import ConfigError
from ccoma.data.buffer import EpisodeBuffer
from ccoma.data.rollout import Rollout, evaluate
from ccoma.envs.matrix import TwoStepGame



ALGOS = sorted(registry.REGISTRY)


def matrix_env():
    return TwoStepGame(n_envs=4)


def sim_env():
    sim = pytest.importorskip("ccoma.sim.env")
    return sim.SimEnv.from_map("3m", n_envs=2, seed=0)


ENVS = {"matrix": matrix_env, "sim": sim_env}


def setup(algo, env_name, **overrides):
    torch.manual_seed(0)
    env = ENVS[env_name]()
    small = 2 if env_name == "sim" else 4  # sim episodes are long (up to 60 steps on 3m)
    cfg = {"batch_size": small, "episodes_per_update": 1, **overrides}
    learner = registry.make(algo, env.get_env_info(), "cpu", cfg)
    buf = EpisodeBuffer(learner.scheme(), env.n_agents, env.episode_limit, 16)
    return env, learner, buf


def fill(env, learner, buf):
    rollout = Rollout(env, learner, buf)
    while len(buf) < learner.config.batch_size:
        rollout.step()
    return buf.sample(min(len(buf), learner.config.batch_size))


@pytest.mark.parametrize("env_name", sorted(ENVS))
@pytest.mark.parametrize("algo", ALGOS)
def test_one_update(algo, env_name):
    env, learner, buf = setup(algo, env_name)
    info = learner.train_step(fill(env, learner, buf), t_env=100)
    assert info and all(isinstance(v, float) and v == v for v in info.values()), info
    assert set(learner.networks()) >= {"agent"}
    names = {n for n, _ in learner.networks()["agent"].named_parameters()}
    assert {"fc1.weight", "rnn.weight_ih", "fc2.bias"} <= names


@pytest.mark.parametrize("algo", ALGOS)
def test_act_respects_availability_and_greedy_is_deterministic(algo):
    env, learner, _ = setup(algo, "matrix")
    n, a = env.n_agents, env.n_actions
    obs = torch.rand(64, n, env.obs_dim)
    avail = torch.zeros(64, n, a, dtype=torch.bool)
    avail[..., 1] = True                                  # only action 1 is available
    last = torch.randint(-1, a, (64, n))
    h = learner.init_hidden(64)
    for mode in ("explore", "greedy"):
        actions, h2 = learner.act(obs, avail, last, h, t_env=0, mode=mode)
        assert actions.shape == (64, n) and actions.dtype == torch.int64 and torch.all(actions == 1)
        assert h2.shape == h.shape
    avail[..., 0] = True
    g1, _ = learner.act(obs, avail, last, h, 0, "greedy")
    g2, _ = learner.act(obs, avail, last, h, 0, "greedy")
    assert torch.equal(g1, g2)
    with pytest.raises(ValueError):
        learner.act(obs, avail, last, h, 0, "sample")


@pytest.mark.parametrize("algo", ALGOS)
def test_frozen_parameters_do_not_move_and_others_do(algo):
    env, learner, buf = setup(algo, "matrix")
    batch = fill(env, learner, buf)
    nets = learner.networks()
    frozen = dict(nets["agent"].fc1.named_parameters())
    for p in frozen.values():
        p.requires_grad_(False)
    before = {k: v.detach().clone() for k, v in learner.state_dict()["modules"]["agent"].items()}
    for _ in range(3):
        learner.train_step(batch, t_env=0)
    after = learner.state_dict()["modules"]["agent"]
    assert torch.equal(before["fc1.weight"], after["fc1.weight"])
    assert not torch.equal(before["fc2.weight"], after["fc2.weight"])
    for p in nets["agent"].parameters():                  # everything frozen: a no-op, no error
        p.requires_grad_(False)
    for net in nets.values():
        for p in net.parameters():
            p.requires_grad_(False)
    learner.train_step(batch, t_env=0)
    assert torch.equal(after["fc2.weight"], learner.state_dict()["modules"]["agent"]["fc2.weight"])


@pytest.mark.parametrize("algo", ALGOS)
def test_regularizer_pulls_the_named_network(algo):
    env, learner, buf = setup(algo, "matrix", lr=1e-2)
    batch = fill(env, learner, buf)
    agent = learner.networks()["agent"]
    anchor = agent.fc2.weight.detach().clone() + 3.0
    learner.add_regularizer("agent", lambda: 100.0 * ((agent.fc2.weight - anchor) ** 2).sum())
    gap = (agent.fc2.weight - anchor).abs().mean().item()
    for _ in range(5):
        learner.train_step(batch, t_env=0)
    assert (agent.fc2.weight - anchor).abs().mean().item() < gap - 0.05
    with pytest.raises(KeyError):
        learner.add_regularizer("nope", lambda: torch.zeros(()))


@pytest.mark.parametrize("algo", ALGOS)
def test_state_dict_round_trip_weights_only(algo):
    env, learner, buf = setup(algo, "matrix")
    learner.train_step(fill(env, learner, buf), t_env=0)
    blob = io.BytesIO()
    torch.save(learner.state_dict(), blob)
    blob.seek(0)
    sd = torch.load(blob, weights_only=True)
    fresh = registry.make(algo, env.get_env_info(), "cpu", learner.config)
    fresh.load_state_dict(sd)
    obs = torch.rand(3, env.n_agents, env.obs_dim)
    avail = torch.ones(3, env.n_agents, env.n_actions, dtype=torch.bool)
    last = torch.zeros(3, env.n_agents, dtype=torch.long)
    a1, h1 = learner.act(obs, avail, last, learner.init_hidden(3), 0, "greedy")
    a2, h2 = fresh.act(obs, avail, last, fresh.init_hidden(3), 0, "greedy")
    assert torch.equal(a1, a2) and torch.allclose(h1, h2)
    assert fresh.train_steps == learner.train_steps == 1


@pytest.mark.parametrize("algo", ALGOS)
def test_config_is_typed_and_documented(algo):
    spec = registry.get(algo)
    for f in dataclasses.fields(spec.config):
        assert f.metadata.get("doc"), f"{spec.config.__name__}.{f.name} has no doc"
    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        registry.make_config(algo, {"nope": 1}, where="run.yaml")


def test_registry_names_and_unknown_algo():
    assert set(ALGOS) == {"iql", "vdn", "qmix", "coma", "mfq"}
    assert registry.get("qmix").config.__name__ == "QMIXConfig"
    with pytest.raises(ConfigError, match="unknown algorithm 'qmax'"):
        registry.get("qmax", where="run.yaml")


def test_evaluate_does_not_write_or_learn():
    env, learner, buf = setup("qmix", "matrix")
    sd = {k: v.clone() for k, v in learner.state_dict()["modules"]["agent"].items()}
    stats = evaluate(TwoStepGame(3), learner, 6)
    assert stats["return"].shape == (6,) and len(buf) == 0
    assert all(torch.equal(v, learner.state_dict()["modules"]["agent"][k]) for k, v in sd.items())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("algo", ALGOS)
def test_cuda_act_and_learn(algo):
    env = TwoStepGame(4, device="cuda")
    learner = registry.make(algo, env.get_env_info(), "cuda", {"batch_size": 4})
    buf = EpisodeBuffer(learner.scheme(), 2, 2, 8, device="cuda")
    info = learner.train_step(fill(env, learner, buf), t_env=0)
    assert all(v == v for v in info.values())
