"""Trainable-parameter budgets: what each continual method may move, counted from the layer sizes."""
from __future__ import annotations

from ccoma.algos import registry
from ccoma.continual.trainable import apply_trainable, counts
from ccoma.run_config import ContinualConfig
from ccoma.sim.env import SimEnv


def test_default_sets_give_the_documented_budgets():
    env = SimEnv.from_map("2s3z", n_envs=1)
    info = env.get_env_info()
    n, a, s = info["n_agents"], info["n_actions"], info["state_shape"]
    trainable = ContinualConfig().trainable
    agent_out = 64 * a + a                        # the agents' output layer fc2
    coma = counts(registry.make("coma", info).networks(), trainable)
    assert coma["agent"][0] == agent_out and coma["critic"][0] == 128 * a + a
    qmix = counts(registry.make("qmix", info).networks(), trainable)
    assert qmix["agent"][0] == agent_out
    assert qmix["mixer"][0] == (64 * 32 + 32) + (32 * 1 + 1)   # hyper_w2's and value's last layers
    vdn = counts(registry.make("vdn", info).networks(), trainable)
    assert set(vdn) == {"agent"} and vdn["agent"][0] == agent_out
    # the coordinators' budgets are within a factor 2 of each other (docs/continual.md)
    assert 0.5 < qmix["mixer"][0] / coma["critic"][0] < 2.0
    assert s > 0 and n == 5


def test_counts_agree_with_what_apply_trainable_frees():
    env = SimEnv.from_map("3m", n_envs=1)
    learner = registry.make("qmix", env.get_env_info())
    trainable = ContinualConfig().trainable
    predicted = counts(learner.networks(), trainable)
    apply_trainable(learner.networks(), trainable)
    for name, net in learner.networks().items():
        live = sum(p.numel() for p in net.parameters() if p.requires_grad)
        assert predicted[name] == (live, sum(p.numel() for p in net.parameters()))
    assert all(live == 0 for live, _ in counts(learner.networks(), None).values())
