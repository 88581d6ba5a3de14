"""The learners' fast paths compute what the plain pymarl-style code computes.

Each fast path (fused GRU unroll, bmm-free QMIX mixing, COMA's critic walk with one host read) is
checked against a straightforward reference written here, gradients and optimiser steps included.
"""
import copy

import pytest
import torch
import torch.nn.functional as F

from ccoma.algos.base import hard_update, optimise
from ccoma.algos.coma import COMAConfig, COMALearner
from ccoma.algos.mixers import QMixer
from ccoma.algos.networks import RNNAgent

INFO = {"n_agents": 3, "n_actions": 4, "obs_shape": 5, "state_shape": 6, "episode_limit": 7}


def test_fused_unroll_gradients_match_the_cell_walk():
    torch.manual_seed(0)
    agent = RNNAgent(7, 3, 16)
    ref = copy.deepcopy(agent)
    x = torch.randn(2, 6, 4, 7)
    g = torch.randn(2, 6, 4, 3)
    (agent.unroll(x) * g).sum().backward()
    h, outs = ref.init_hidden(2, 4), []
    for t in range(6):                                   # GRUCell one step at a time (pymarl)
        out, h = ref(x[:, t], h)
        outs.append(out)
    (torch.stack(outs, 1) * g).sum().backward()
    for (name, p), q in zip(agent.named_parameters(), ref.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5), name


def test_qmix_mixing_matches_the_bmm_formulation():
    torch.manual_seed(1)
    mixer = QMixer(3, 6, embed_dim=8, hypernet_dim=16)
    qs, states = torch.randn(4, 5, 3), torch.randn(4, 5, 6)
    s, q = states.reshape(-1, 6), qs.reshape(-1, 1, 3)
    w1 = mixer.hyper_w1(s).abs().view(-1, 3, 8)
    hidden = F.elu(torch.bmm(q, w1) + mixer.hyper_b1(s).view(-1, 1, 8))
    y = torch.bmm(hidden, mixer.hyper_w2(s).abs().view(-1, 8, 1)).view(-1) + mixer.value(s).view(-1)
    assert torch.allclose(mixer(qs, states), y.view(4, 5), atol=1e-6)


def _reference_critic_walk(learner, inputs, actions, targets, mask):
    """pymarl's loop as written before the fast path: one step per slot, backwards."""
    c = learner.config
    q_vals = torch.zeros(*targets.shape, learner.n_actions)
    losses = []
    for t in reversed(range(targets.shape[1])):
        m = mask[:, t].unsqueeze(-1).expand(-1, learner.n_agents)
        if float(m.sum()) == 0.0:
            continue
        q_t = learner.critic(inputs[:, t])
        q_vals[:, t] = q_t.detach()
        taken = q_t.gather(-1, actions[:, t, :, None]).squeeze(-1)
        loss = (((taken - targets[:, t]) * m) ** 2).sum() / m.sum()
        optimise(loss, learner.critic_optimiser, learner.critic_params, c.grad_norm_clip)
        losses.append(float(loss.detach()))
        learner.critic_steps += 1
        if learner.critic_steps - learner.last_target_step >= c.target_update_interval:
            hard_update(learner.target_critic, learner.critic)
            learner.last_target_step = learner.critic_steps
    return q_vals, losses


def test_coma_critic_walk_matches_the_reference_loop():
    torch.manual_seed(2)
    cfg = COMAConfig(target_update_interval=3)
    fast = COMALearner(cfg, INFO)
    ref = COMALearner(cfg, INFO)
    ref.load_state_dict(fast.state_dict())
    b, t, n, a = 3, 6, 3, 4
    d = fast.critic.fc1.in_features
    inputs, targets = torch.randn(b, t + 1, n, d), torch.randn(b, t, n)
    actions = torch.randint(0, a, (b, t + 1, n))
    mask = (torch.arange(t)[None] < torch.tensor([[6], [2], [4]])).float()  # ragged episodes
    mask[:, 5] = 0.0                                                        # a slot nobody reached
    q_fast, info = fast._train_critic(inputs, actions, targets, mask)
    q_ref, losses = _reference_critic_walk(ref, inputs, actions, targets, mask)
    assert torch.allclose(q_fast, q_ref, atol=1e-6)
    assert fast.critic_steps == ref.critic_steps == 5 and fast.last_target_step == ref.last_target_step == 3
    assert abs(info["critic_loss"] - sum(losses) / len(losses)) < 1e-6
    for p, q in zip(fast.critic.parameters(), ref.critic.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    for p, q in zip(fast.target_critic.parameters(), ref.target_critic.parameters()):
        assert torch.equal(p, q)


def _coma_batch(b=4, t=7):
    return {"obs": torch.randn(b, t, 3, 5), "state": torch.randn(b, t, 6),
            "actions": torch.randint(0, 4, (b, t, 3)), "avail": torch.ones(b, t, 3, 4, dtype=torch.bool),
            "reward": torch.randn(b, t), "terminated": torch.zeros(b, t),
            "filled": (torch.arange(t)[None] < torch.tensor([6, 4, 5, 2])[:, None]).float()}


def coma_stage_updates(learner, first, rest, stage: str) -> list:
    """One update on ``first`` in training, then (``continual``: the continual head, fc3 on the frozen
    trunk; ``anchored``: that and an L2 anchor on the critic) one update on each of ``rest``; their infos."""
    from ccoma.continual import anchors
    from ccoma.continual.trainable import apply_trainable
    from ccoma.run_config import ContinualConfig

    infos = [learner.train_step(first, 0)]
    if stage != "train":
        apply_trainable(learner.networks(), ContinualConfig().trainable)
        hard_update(learner.target_critic, learner.critic)
    if stage == "anchored":
        anchors.attach(learner, "l2", 0.5)
    return infos + [learner.train_step(x, 100) for x in rest]


@pytest.mark.parametrize("stage", ["train", "continual", "anchored"])
def test_coma_critic_steps_by_hand_are_autograds_bit_for_bit(stage, monkeypatch):
    """The critic's steps with gradients, clipping and RMSprop written out give every number autograd,
    clip_grad_norm_ and torch's RMSprop give: weights, optimiser state, target copies, the update's
    info and the gradients left behind. Training (fc1-fc3), continual (fc3 on the frozen features),
    and with an anchor on the critic, where every step must go through autograd."""
    import ccoma.algos.coma as coma_mod
    from ccoma.algos import registry

    torch.manual_seed(4)
    batches = [_coma_batch() for _ in range(3)]
    calls = []
    real_step = coma_mod._CriticByHand.step
    monkeypatch.setattr(coma_mod._CriticByHand, "step", lambda *a: calls.append(1) or real_step(*a))

    def run(by_hand):
        torch.manual_seed(5)
        learner = registry.make("coma", {**INFO, "episode_limit": 6}, "cpu",
                                {"batch_size": 4, "target_update_interval": 4, "grad_norm_clip": 0.5})
        learner.critic_by_hand = by_hand
        infos = coma_stage_updates(learner, batches[0], batches, stage)
        grads = {k: p.grad for k, p in learner.critic.named_parameters()}
        return infos, dict(_flat(learner.state_dict())), grads

    infos, state, grads = run(True)
    hand_steps = len(calls)
    ref_infos, ref_state, ref_grads = run(False)
    assert len(calls) == hand_steps                    # the reference ran no step by hand
    # 4 updates of 6 steps; the very first step goes through autograd (torch's RMSprop makes its state)
    assert hand_steps == {"train": 23, "continual": 23, "anchored": 5}[stage]
    assert infos == ref_infos
    assert state.keys() == ref_state.keys()
    assert [k for k in state if not torch.equal(state[k], ref_state[k])] == []
    assert grads.keys() == ref_grads.keys()
    for k, g in grads.items():
        assert (g is None) == (ref_grads[k] is None), k
        assert g is None or torch.equal(g, ref_grads[k]), k


def test_updates_flush_subnormals_and_leave_the_thread_as_they_found_it(monkeypatch):
    """Learner updates run with flush-to-zero (subnormal arithmetic is many times slower on x86), and
    the thread's mode is restored after (hypothesis, for one, refuses to run under flush-to-zero);
    CCOMA_FLUSH_DENORMAL=0 keeps IEEE subnormals."""
    from ccoma.algos.base import flushed_denormals, flushing_denormals

    torch.set_flush_denormal(False)
    assert not flushing_denormals()
    with flushed_denormals():
        if not torch.set_flush_denormal(True):
            pytest.skip("this CPU has no flush-to-zero mode")
        assert flushing_denormals()
    assert not flushing_denormals()
    monkeypatch.setenv("CCOMA_FLUSH_DENORMAL", "0")
    with flushed_denormals():
        assert not flushing_denormals()


def test_rollout_updates_run_flushed(monkeypatch):
    from ccoma.algos import registry
    from ccoma.algos.base import flushing_denormals
    from ccoma.data.buffer import buffer_for
    from ccoma.data.rollout import Rollout
    from ccoma.envs import make

    env = make("sim", "3m", 4, seed=0)
    learner = registry.make("coma", env.get_env_info(), "cpu", config={"batch_size": 4, "episodes_per_update": 4})
    seen = []
    step = learner.train_step
    monkeypatch.setattr(learner, "train_step", lambda *a, **k: (seen.append(flushing_denormals()), step(*a, **k))[1])
    torch.set_flush_denormal(False)
    Rollout(env, learner, buffer_for(learner, env.n_agents, env.episode_limit, 8, 4)).run(4 * 61)
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU has no flush-to-zero mode")
    assert seen and all(seen) and not flushing_denormals()


def _flat(d, prefix=""):
    for k, v in d.items():
        if torch.is_tensor(v):
            yield prefix + str(k), v
        elif isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")


@pytest.mark.parametrize("algo", ["qmix", "vdn"])
def test_continual_updates_share_the_frozen_trunk_and_change_nothing(algo, monkeypatch):
    """A continual deployment that trains only the output layers computes the agent's and the target
    agent's hidden states once; the updates are bit for bit those of computing them twice."""
    import ccoma.algos.q_learner as ql
    from ccoma.algos import registry
    from ccoma.continual.trainable import apply_trainable
    from ccoma.run_config import ContinualConfig

    torch.manual_seed(2)
    info = {**INFO, "episode_limit": 6}
    learner = registry.make(algo, info, "cpu", {"batch_size": 4})
    b, t = 4, 7
    batch = {"obs": torch.randn(b, t, 3, 5), "state": torch.randn(b, t, 6),
             "actions": torch.randint(0, 4, (b, t, 3)), "avail": torch.ones(b, t, 3, 4, dtype=torch.bool),
             "reward": torch.randn(b, t), "terminated": torch.zeros(b, t),
             "filled": (torch.arange(t)[None] < torch.tensor([6, 4, 5, 2])[:, None]).float()}
    learner.train_step(batch, 0)                       # some training first: target and online differ
    calls = []
    real = ql.same_frozen_trunk
    monkeypatch.setattr(ql, "same_frozen_trunk", lambda a, b: calls.append(real(a, b)) or calls[-1])
    learner.train_step(batch, 0)
    assert calls == [False]                            # training: the trunk learns
    apply_trainable(learner.networks(), ContinualConfig().trainable)
    learner.update_targets()
    start = copy.deepcopy(learner.state_dict())
    shared = [learner.train_step(batch, 0) for _ in range(3)]
    assert calls[1:] == [True] * 3
    after_shared = dict(_flat(copy.deepcopy(learner.state_dict())))
    learner.load_state_dict(start)
    monkeypatch.setattr(ql, "same_frozen_trunk", lambda a, b: False)
    twice = [learner.train_step(batch, 0) for _ in range(3)]
    after_twice = dict(_flat(learner.state_dict()))
    assert shared == twice
    assert after_shared.keys() == after_twice.keys()
    assert all(torch.equal(after_shared[k], after_twice[k]) for k in after_shared)
    assert not torch.equal(after_shared["modules.agent.fc2.weight"], start["modules"]["agent"]["fc2.weight"])


def test_continual_coma_critic_reads_its_frozen_features_once(monkeypatch):
    """C-COMA with the default trainable set (the critic's last layer): the target critic and every
    critic step read the frozen fc1/fc2 features computed once; the updates are those of running the
    whole critic each time (to float rounding: a slice of a larger product may round differently)."""
    import ccoma.algos.coma as coma_mod
    from ccoma.algos import registry
    from ccoma.continual.trainable import apply_trainable
    from ccoma.run_config import ContinualConfig

    torch.manual_seed(3)
    learner = registry.make("coma", {**INFO, "episode_limit": 6}, "cpu", {"batch_size": 4})
    b, t = 4, 7
    batch = {"obs": torch.randn(b, t, 3, 5), "state": torch.randn(b, t, 6),
             "actions": torch.randint(0, 4, (b, t, 3)), "avail": torch.ones(b, t, 3, 4, dtype=torch.bool),
             "reward": torch.randn(b, t), "terminated": torch.zeros(b, t),
             "filled": (torch.arange(t)[None] < torch.tensor([6, 4, 5, 2])[:, None]).float()}
    calls = []
    real = coma_mod.same_frozen_trunk
    monkeypatch.setattr(coma_mod, "same_frozen_trunk", lambda a, b: calls.append(real(a, b)) or calls[-1])
    learner.train_step(batch, 0)
    assert calls == [False]                            # training: the critic's trunk learns
    apply_trainable(learner.networks(), ContinualConfig().trainable)
    hard_update(learner.target_critic, learner.critic)
    start = copy.deepcopy(learner.state_dict())
    rng = torch.get_rng_state()
    once = [learner.train_step(batch, 0) for _ in range(3)]
    assert calls[1:] == [True] * 3
    after_once = dict(_flat(copy.deepcopy(learner.state_dict())))
    learner.load_state_dict(start)
    torch.set_rng_state(rng)                           # the bootstrap actions are sampled
    monkeypatch.setattr(coma_mod, "same_frozen_trunk", lambda a, b: False)
    every = [learner.train_step(batch, 0) for _ in range(3)]
    after_every = dict(_flat(learner.state_dict()))
    for a, e in zip(once, every):
        assert a.keys() == e.keys()
        for k in a:
            assert a[k] == pytest.approx(e[k], rel=1e-5, abs=1e-7), k
    for k in after_once:
        torch.testing.assert_close(after_once[k], after_every[k], rtol=1e-5, atol=1e-7, msg=k)
    assert not torch.equal(after_once["modules.critic.fc3.weight"], start["modules"]["critic"]["fc3.weight"])
