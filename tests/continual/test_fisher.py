"""The EWC Fisher: per-sample squared scores, checked against a Fisher computed by hand."""
from __future__ import annotations

import torch
import torch.nn as nn

from ccoma.continual import anchors


class ToyLearner:
    """A 'learner' with a linear actor (softmax over 2 actions) and a linear critic, whose per-episode
    losses are simple enough to differentiate by hand."""

    def __init__(self):
        self.actor = nn.Linear(2, 2, bias=False)
        self.critic = nn.Linear(2, 1, bias=True)
        with torch.no_grad():
            self.actor.weight.copy_(torch.tensor([[0.3, -0.2], [0.1, 0.4]]))
            self.critic.weight.copy_(torch.tensor([[0.5, -1.0]]))
            self.critic.bias.fill_(0.2)

    def networks(self):
        return {"agent": self.actor, "critic": self.critic}

    def fisher_losses(self, batch, t_env):
        x, a, y = batch["x"], batch["a"], batch["y"]                         # [B, 2], [B], [B]
        logp = torch.log_softmax(self.actor(x), -1).gather(-1, a[:, None]).squeeze(-1)
        td = self.critic(x).squeeze(-1) - y
        return {"agent": -logp, "critic": 0.5 * td ** 2}


BATCH = {"x": torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.0, -3.0]]), "a": torch.tensor([0, 1, 1]),
         "y": torch.tensor([1.0, -0.5, 2.0]), "filled": torch.ones(3, 2, dtype=torch.bool)}


def hand_fisher(learner):
    """d(-log softmax(Wx)[a])/dW = (pi - onehot(a)) x^T;  d(td^2/2)/d(w, b) = td * (x, 1)."""
    fa, fw, fb = torch.zeros(2, 2), torch.zeros(1, 2), torch.zeros(1)
    W, w, b = learner.actor.weight.detach(), learner.critic.weight.detach(), learner.critic.bias.detach()
    for x, a, y in zip(BATCH["x"], BATCH["a"], BATCH["y"]):
        pi = torch.softmax(W @ x, -1)
        g = (pi - torch.nn.functional.one_hot(a, 2).float())[:, None] * x[None, :]
        fa += g ** 2
        td = (w @ x + b - y)
        fw += (td * x[None, :]) ** 2
        fb += td ** 2
    n = len(BATCH["y"])
    return fa / n, fw / n, fb / n


def test_fisher_diagonal_equals_the_hand_computed_fisher():
    learner = ToyLearner()
    fisher = anchors.fisher_diagonal(learner, lambda: BATCH, batches=2)
    fa, fw, fb = hand_fisher(learner)
    assert torch.allclose(fisher["agent"]["weight"], fa, atol=1e-6)
    assert torch.allclose(fisher["critic"]["weight"], fw, atol=1e-6)
    assert torch.allclose(fisher["critic"]["bias"], fb, atol=1e-6)


def test_fisher_squares_each_sample_not_the_batch_mean():
    learner = ToyLearner()
    fisher = anchors.fisher_diagonal(learner, lambda: BATCH, batches=1)
    mean_grad = torch.autograd.grad(learner.fisher_losses(BATCH, 0)["critic"].mean(), learner.critic.weight)[0]
    # Jensen: E[g^2] >= (E g)^2, strictly here since the samples' gradients differ
    assert (fisher["critic"]["weight"] > mean_grad ** 2 + 1e-6).all()


def test_fisher_covers_only_learning_parameters_and_takes_no_step():
    learner = ToyLearner()
    learner.critic.bias.requires_grad_(False)
    before = {k: v.clone() for k, v in learner.critic.state_dict().items()}
    fisher = anchors.fisher_diagonal(learner, lambda: BATCH, batches=1)
    assert set(fisher["critic"]) == {"weight"}
    assert all(torch.equal(before[k], v) for k, v in learner.critic.state_dict().items())


def test_coma_actor_score_is_the_log_likelihood_of_the_taken_actions():
    """COMA's per-episode actor loss is -sum log pi(u_t) under the behaviour policy (floor included)."""
    from ccoma.algos import registry
    from ccoma.algos.coma import policy
    from ccoma.algos.networks import agent_inputs, shift_last_actions
    from ccoma.data.buffer import EpisodeBuffer
    from ccoma.data.rollout import Rollout
    from ccoma.envs.matrix import TwoStepGame

    torch.manual_seed(0)
    env = TwoStepGame(4)
    learner = registry.make("coma", env.get_env_info(), "cpu")
    buf = EpisodeBuffer(learner.scheme(), 2, 2, 8)
    Rollout(env, learner, buf).collect(6)
    batch = buf.latest(4)
    t = 50_000
    nll = learner.fisher_losses(batch, t)["agent"]                            # [4]
    logits = learner.agent.unroll(agent_inputs(batch["obs"], shift_last_actions(batch["actions"]), learner.n_actions))
    pi = policy(logits, batch["avail"], learner.epsilon(t)).detach()         # read as numbers below
    mask = batch["filled"][:, :-1]
    by_hand = []
    for e in range(4):
        total = 0.0
        for s in range(mask.shape[1]):
            if mask[e, s]:
                for a in range(2):
                    total -= float(torch.log(pi[e, s, a, batch["actions"][e, s, a]]))
        by_hand.append(total)
    assert torch.allclose(nll.detach(), torch.tensor(by_hand), atol=1e-5)
