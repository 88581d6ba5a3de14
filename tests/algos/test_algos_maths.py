"""The pure maths of the learners: mixers, COMA's targets/advantages/inputs, mean-field pieces."""
import pytest
import torch

from ccoma.algos.coma import counterfactual_advantages, critic_inputs, policy, td_lambda_targets
from ccoma.algos.mfq import ally_visible_index, mean_action, neighbour_mask, others_index
from ccoma.algos.mixers import QMixer, VDNMixer
from ccoma.algos.networks import RNNAgent


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_qmix_is_monotone_in_every_agent_q(seed):
    torch.manual_seed(seed)
    n, s = 5, 12
    mixer = QMixer(n, s, embed_dim=32, hypernet_dim=64)
    for p in mixer.parameters():  # large, mixed-sign weights: monotonicity must not depend on init
        p.data.normal_(0, 2.0)
    qs = (torch.randn(16, 7, n) * 10).requires_grad_(True)
    states = torch.randn(16, 7, s) * 3
    q_tot = mixer(qs, states)
    assert q_tot.shape == (16, 7)
    grads, = torch.autograd.grad(q_tot.sum(), qs)
    assert torch.all(grads >= 0)
    assert (grads > 0).float().mean() > 0.5       # and not trivially flat
    # the non-linearity is real: Q_tot is not a weighted sum of the Qs
    assert not torch.allclose(mixer(qs * 2, states) - mixer(torch.zeros_like(qs), states),
                              2 * (q_tot - mixer(torch.zeros_like(qs), states)), atol=1e-3)


def test_vdn_sums():
    qs = torch.randn(3, 4, 5)
    assert torch.allclose(VDNMixer()(qs, None), qs.sum(-1))


def test_td_lambda_targets_by_hand():
    g, lam = 0.9, 0.8
    r = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [5.0, 6.0, 0.0]])    # [B=3, T=3]
    term = torch.tensor([[0, 0, 1], [0, 0, 0], [0, 1, 0]], dtype=torch.bool)  # terminated / truncated / short
    filled = torch.tensor([[1, 1, 1], [1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    q = torch.tensor([[10.0, 20.0, 30.0, 40.0], [10.0, 20.0, 30.0, 40.0], [7.0, 8.0, 9.0, 99.0]])
    out = td_lambda_targets(r, term, filled, q.unsqueeze(-1), g, lam).squeeze(-1)

    # Episode 0 terminates after step 2: no bootstrap at the end.
    g2 = 3.0
    g1 = 2.0 + g * ((1 - lam) * 30.0 + lam * g2)
    g0 = 1.0 + g * ((1 - lam) * 20.0 + lam * g1)
    assert torch.allclose(out[0], torch.tensor([g0, g1, g2]))
    # Episode 1 is truncated after step 2: it bootstraps from the final slot's Q (40).
    g2 = 3.0 + g * 40.0
    g1 = 2.0 + g * ((1 - lam) * 30.0 + lam * g2)
    g0 = 1.0 + g * ((1 - lam) * 20.0 + lam * g1)
    assert torch.allclose(out[1], torch.tensor([g0, g1, g2]))
    # Episode 2 terminates after 2 steps; its padding (Q = 9, 99) must not leak in.
    g1 = 6.0
    g0 = 5.0 + g * ((1 - lam) * 8.0 + lam * g1)
    assert torch.allclose(out[2, :2], torch.tensor([g0, g1]))


def test_td_lambda_one_is_monte_carlo_and_zero_is_td0():
    r = torch.rand(2, 5)
    term = torch.zeros(2, 5, dtype=torch.bool)
    term[:, -1] = True
    filled = torch.ones(2, 5, dtype=torch.bool)
    q = torch.rand(2, 6, 3)
    mc = td_lambda_targets(r, term, filled, q, 0.9, 1.0)
    disc = torch.tensor([0.9 ** k for k in range(5)])
    assert torch.allclose(mc[:, 0], (r * disc).sum(-1, keepdim=True).expand(2, 3), atol=1e-5)
    td0 = td_lambda_targets(r, term, filled, q, 0.9, 0.0)
    expect = r[..., None] + 0.9 * q[:, 1:] * (~term[..., None])
    assert torch.allclose(td0, expect)


def test_policy_floor_and_zero_sum_advantage():
    torch.manual_seed(0)
    logits = torch.randn(64, 4, 9) * 3
    avail = torch.rand(64, 4, 9) > 0.4
    avail[..., 0] = True
    q = torch.randn(64, 4, 9) * 5
    for eps in (0.0, 0.3):
        pi = policy(logits, avail, eps)
        assert torch.allclose(pi.sum(-1), torch.ones(64, 4))
        assert torch.all(pi[~avail] == 0)
        assert torch.all(pi[avail] >= eps / 9 - 1e-7)
        adv = counterfactual_advantages(q, pi)
        assert torch.allclose((pi * adv).sum(-1), torch.zeros(64, 4), atol=1e-4)
        assert not torch.allclose(adv, torch.zeros_like(adv))


def test_critic_inputs_layout():
    b, t, n, a, s, o = 1, 2, 3, 4, 5, 6
    state, obs = torch.rand(b, t, s), torch.rand(b, t, n, o)
    actions = torch.tensor([[[0, 1, 2], [3, 3, 1]]])
    x = critic_inputs(state, obs, actions, a)
    assert x.shape == (b, t, n, s + o + 2 * n * a + n)
    agent, step = 1, 1
    row = x[0, step, agent]
    assert torch.equal(row[:s], state[0, step]) and torch.equal(row[s:s + o], obs[0, step, agent])
    joint = row[s + o: s + o + n * a].view(n, a)
    assert torch.equal(joint[0], torch.eye(a)[3]) and torch.equal(joint[2], torch.eye(a)[1])
    assert torch.all(joint[agent] == 0)                  # own action hidden from its own critic input
    last = row[s + o + n * a: s + o + 2 * n * a].view(n, a)
    assert torch.equal(last, torch.eye(a)[[0, 1, 2]])    # joint action of step 0
    assert torch.all(x[0, 0, :, s + o + n * a: s + o + 2 * n * a] == 0)  # none before the first step
    assert torch.equal(row[-n:], torch.eye(n)[agent])


def test_agent_unroll_matches_stepwise_forward():
    torch.manual_seed(0)
    agent = RNNAgent(7, 3, 16)
    x = torch.randn(2, 5, 4, 7)
    seq = agent.unroll(x)
    h = agent.init_hidden(2, 4)
    for t in range(5):
        out, h = agent(x[:, t], h)
        assert torch.allclose(out, seq[:, t], atol=1e-6)


def test_neighbours_from_visible_bits_and_mean_action():
    assert others_index(3).tolist() == [[1, 2], [0, 2], [0, 1]]
    info = {"n_agents": 5, "n_enemies": 5, "obs_shape": 80, "state_shape": 120, "n_actions": 11}
    assert ally_visible_index(info) == [44, 52, 60, 68]   # 2s3z: blocks of 8 after 4 + 5 * 8
    assert ally_visible_index({**info, "obs_shape": 81}) is None
    assert ally_visible_index({"n_agents": 2, "obs_shape": 3}) is None
    obs = torch.zeros(3, 5)                                # 3 agents; ally visible bits at 1 and 3
    obs[0, 1] = 1.0                                        # agent 0 sees agent 1
    obs[2, 1], obs[2, 3] = 1.0, 1.0                        # agent 2 sees agents 0 and 1
    nb = neighbour_mask(obs, [1, 3])
    assert nb.tolist() == [[False, True, False], [False, False, False], [True, True, False]]
    mf = mean_action(torch.tensor([2, 0, 1]), nb, 3)
    assert torch.allclose(mf, torch.tensor([[1.0, 0, 0], [0, 0, 0], [0.5, 0, 0.5]]))
    everyone = neighbour_mask(obs, None)
    assert everyone.tolist() == [[False, True, True], [True, False, True], [True, True, False]]
