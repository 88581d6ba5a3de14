"""The two-step matrix game follows the BatchedEnv/StepOut contract and the QMIX paper's payoffs."""
import pytest
import torch

from ccoma.envs.matrix import TwoStepGame
from ccoma.errors import CcomaError


def play(first, second, n_envs=3):
    env = TwoStepGame(n_envs)
    env.reset()
    out1 = env.step(torch.tensor([first] * n_envs))
    out2 = env.step(torch.tensor([second] * n_envs))
    return env, out1, out2


@pytest.mark.parametrize("first,second,payoff", [
    ((0, 0), (0, 0), 7.0), ((0, 1), (1, 1), 7.0),          # agent 1 picks A -> 2A pays 7 always
    ((1, 0), (0, 0), 0.0), ((1, 1), (0, 1), 1.0), ((1, 0), (1, 0), 1.0), ((1, 1), (1, 1), 8.0),
])
def test_payoffs(first, second, payoff):
    _, out1, out2 = play(first, second)
    assert torch.all(out1.reward == 0) and not out1.done.any()
    assert torch.all(out2.reward == payoff)
    assert torch.all(out2.terminated) and not out2.truncated.any()
    assert torch.all(out2.episode_return == payoff) and torch.all(out2.episode_length == 2)
    assert torch.all(out2.won == (payoff == 8.0))


def test_observations_and_auto_reset():
    env = TwoStepGame(2)
    env.reset()
    assert torch.equal(env.get_obs()[:, 0], torch.tensor([[1.0, 0, 0]] * 2))
    env.step(torch.tensor([[0, 0], [1, 0]]))
    assert torch.equal(env.get_state(), torch.tensor([[0.0, 1, 0], [0, 0, 1]]))  # 2A and 2B
    out = env.step(torch.tensor([[0, 0], [0, 0]]))
    assert torch.all(out.obs == 0)                      # final observation: the terminal marker
    assert torch.equal(env.get_obs()[:, 1], torch.tensor([[1.0, 0, 0]] * 2))  # new episodes started
    assert env.get_avail_actions().shape == (2, 2, 2) and env.get_avail_actions().all()


def test_env_info_and_no_source():
    env = TwoStepGame(1)
    assert env.get_env_info() == {"state_shape": 3, "obs_shape": 3, "n_actions": 2, "n_agents": 2, "episode_limit": 2}
    with pytest.raises(CcomaError):
        env.set_source(object())
