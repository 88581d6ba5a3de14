"""The batched rollout: per-env time indices, auto-reset, final-slot bootstrap data, evaluation mode."""
import copy

import pytest
import torch

from ccoma.algos import registry
from ccoma.data.buffer import EpisodeBuffer
from ccoma.data.rollout import Rollout, evaluate
from ccoma.envs.base import StepOut




LIMIT = 4


class CountingEnv:
    """Env b's episodes end after ``ends[b]`` steps: terminated when < LIMIT, truncated at LIMIT.

    obs[..., 0] = 10 * episode + t + 1 (t = steps taken; the final obs has t = length), obs[..., 1] = b.
    """

    n_agents, n_enemies, n_actions, obs_dim, state_dim, episode_limit = 2, 0, 3, 2, 2, LIMIT

    def __init__(self, ends):
        self.n_envs = len(ends)
        self.device = torch.device("cpu")
        self.ends = torch.tensor(ends)
        self.actions_seen = []
        self.reset()

    def reset(self):
        self.t = torch.zeros(self.n_envs, dtype=torch.long)
        self.ep = torch.zeros(self.n_envs, dtype=torch.long)

    def _obs(self):
        first = (10 * self.ep + self.t + 1).float()
        return torch.stack([first, torch.arange(self.n_envs).float()], -1)[:, None].expand(-1, 2, -1).clone()

    def get_obs(self):
        return self._obs()

    def get_state(self):
        return self._obs()[:, 0]

    def get_avail_actions(self):
        avail = torch.ones(self.n_envs, 2, 3, dtype=torch.bool)
        avail[:, :, 2] = False  # action 2 is never available
        return avail

    def step(self, actions):
        self.actions_seen.append(actions.clone())
        self.t += 1
        done = self.t >= self.ends
        terminated = done & (self.ends < LIMIT)
        truncated = done & (self.ends >= LIMIT)
        reward = self.t.float()
        out = StepOut(reward=reward, terminated=terminated, truncated=truncated, won=terminated,
                      episode_return=torch.where(done, self.t * (self.t + 1) / 2.0, torch.zeros(self.n_envs)),
                      episode_length=torch.where(done, self.t, torch.zeros_like(self.t)),
                      phase=self.ep.clone(), unseen=torch.zeros(self.n_envs, dtype=torch.bool),
                      obs=self._obs(), state=self.get_state(), avail=self.get_avail_actions())
        self.ep = torch.where(done, self.ep + 1, self.ep)
        self.t = torch.where(done, torch.zeros_like(self.t), self.t)
        return out

    def get_env_info(self):
        return {"state_shape": 2, "obs_shape": 2, "n_actions": 3, "n_agents": 2, "episode_limit": LIMIT}


def make(ends, algo="qmix"):
    env = CountingEnv(ends)
    learner = registry.make(algo, env.get_env_info())
    buf = EpisodeBuffer(learner.scheme(), 2, LIMIT, capacity=100)
    return env, learner, buf, Rollout(env, learner, buf)


def test_episodes_of_different_lengths_are_stored_padded_with_final_slot():
    torch.manual_seed(0)
    env, _, buf, rollout = make([1, 2, 4])      # env 0 and 1 terminate, env 2 truncates
    stats = rollout.collect(4)
    assert rollout.t_env == 12
    # env 0 finished 4 episodes, env 1 two, env 2 one
    assert len(buf) == 7 and rollout.episodes == 7
    assert sorted(stats["length"].tolist()) == [1, 1, 1, 1, 2, 2, 4]
    data = {k: v[:7] for k, v in buf.data.items()}
    for i in range(7):
        b, n = int(data["obs"][i, 0, 0, 1]), int(data["filled"][i].sum())
        assert n == [1, 2, 4][b]
        assert torch.equal(data["obs"][i, : n + 1, 0, 0] % 10, torch.arange(1, n + 2).float())  # steps + final obs
        assert torch.all(data["obs"][i, n + 1:] == 0)
        assert data["terminated"][i].tolist()[:n] == [False] * (n - 1) + [b < 2]  # truncation is not terminal
        assert torch.equal(data["reward"][i, :n], torch.arange(1, n + 1).float())
        assert data["avail"][i, n].any() and not data["avail"][i, n, :, 2].any()    # final avail kept
    # actions recorded are those the env received, and never unavailable
    seen = torch.stack(env.actions_seen)                 # [steps, B, N]
    assert not (seen == 2).any()
    assert torch.equal(data["actions"][0, 0], seen[0, 0])


def test_auto_reset_clears_hidden_and_last_actions():
    torch.manual_seed(0)
    _, learner, _, rollout = make([1, 3])
    rollout.collect(1)
    assert rollout.last_actions[0].tolist() == [-1, -1]   # env 0 just restarted
    assert torch.all(rollout.hidden[0] == 0) and not torch.all(rollout.hidden[1] == 0)
    assert rollout.last_actions[1].min() >= 0
    assert rollout.t.tolist() == [0, 1]


def _target_mean(learner, batch):
    return copy.deepcopy(learner).train_step({k: v.clone() for k, v in batch.items()}, 0)["target_mean"]


def test_truncated_episode_bootstraps_from_final_slot():
    """A Q-learner's target for the last step of a truncated episode reads the final slot."""
    for ends, bootstraps in (([4], True), ([2], False)):
        torch.manual_seed(0)
        _, learner, buf, rollout = make(ends)
        rollout.collect(ends[0])
        batch = buf.sample(1)
        n = ends[0]
        assert batch["obs"].shape[1] == n + 1 and bool(batch["terminated"][0, n - 1]) == (not bootstraps)
        moved = {k: v.clone() for k, v in batch.items()}
        moved["obs"][0, n] += 5.0
        moved["state"][0, n] += 5.0
        changed = _target_mean(learner, batch) != _target_mean(learner, moved)
        assert changed == bootstraps


def test_run_trains_every_k_episodes_and_evaluate_is_greedy():
    torch.manual_seed(0)
    _, learner, buf, rollout = make([2, 2, 2, 2])
    calls = []
    rollout.run(40, batch_size=4, episodes_per_update=4, on_train=lambda info, t: calls.append(t))
    assert rollout.t_env == 40 and rollout.episodes == 20
    assert len(calls) == 5 and calls == sorted(calls)
    stats = evaluate(CountingEnv([2, 3]), learner, 5)
    assert stats["length"].numel() == 5
    assert sorted(stats["length"].tolist()) == [2, 2, 2, 3, 3]   # first 3 episodes of each env, 5 kept


def test_target_updates_continue_across_rollouts_and_pending_carries_over():
    """A new Rollout (next stage, resumed job) must not stall episode-based target updates."""
    torch.manual_seed(0)
    env = CountingEnv([2, 2])
    learner = registry.make("qmix", env.get_env_info(), "cpu",
                            {"batch_size": 2, "episodes_per_update": 3, "target_update_interval": 6})
    buf = EpisodeBuffer(learner.scheme(), 2, LIMIT, capacity=50)
    first = Rollout(env, learner, buf)
    first.run(8)                                   # 4 episodes: one update, one episode pending
    assert learner.train_steps == 1 and first.pending == 1
    first.run(4)                                   # +2 episodes: the pending one counts -> second update
    assert learner.train_steps == 2 and first.pending == 0
    assert learner.episodes_seen == 6 and learner.last_target_episode == 6
    first.reset()
    second = Rollout(CountingEnv([2, 2]), learner, buf)   # its episode counter starts again at 0
    second.run(24)                                        # 12 episodes -> 4 updates, 2 target copies
    assert learner.train_steps == 6 and learner.episodes_seen == 18 and learner.last_target_episode == 18


@pytest.mark.parametrize("algo", ["qmix", "coma"])
def test_resume_from_learner_state_continues_identically(algo):
    """Learner state + buffer + RNG at a reset barrier are all a resumed run needs."""
    torch.manual_seed(0)
    env = CountingEnv([2, 3, 4])
    learner = registry.make(algo, env.get_env_info(), "cpu", {"batch_size": 4,
                                                               "episodes_per_update": 2, "target_update_interval": 3})
    buf = EpisodeBuffer(learner.scheme(), 2, LIMIT, 8)
    rollout = Rollout(env, learner, buf)
    rollout.run(60)
    rollout.reset()
    saved, saved_buf, rng = learner.state_dict(), copy.deepcopy(buf), torch.get_rng_state()
    full = []
    rollout.run(60, on_train=lambda info, t: full.append(info))

    resumed_learner = registry.make(algo, env.get_env_info(), "cpu", learner.config)
    resumed_learner.load_state_dict(saved)
    torch.set_rng_state(rng)                             # after building: weight init draws from it
    resumed, again = [], Rollout(CountingEnv([2, 3, 4]), resumed_learner, saved_buf)
    again.t_env = 60                                     # the harness restores its step count
    again.run(60, on_train=lambda info, t: resumed.append(info))
    assert len(full) == len(resumed) > 0
    for a, b in zip(full, resumed):
        assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-6 for k in a), (a, b)


def test_updates_run_on_the_rollouts_thread_count_and_acting_on_the_callers():
    """``threads``: learner updates use that many torch threads; acting and stepping stay on one."""
    torch.manual_seed(0)
    env, learner, buf, _ = make([2, 2, 2, 2])
    rollout = Rollout(env, learner, buf, threads=2)
    seen = {"act": set(), "train": set()}
    act, train = learner.act, learner.train_step

    def counting_act(*a, **k):
        seen["act"].add(torch.get_num_threads())
        return act(*a, **k)

    def counting_train(*a, **k):
        seen["train"].add(torch.get_num_threads())
        return train(*a, **k)

    learner.act, learner.train_step = counting_act, counting_train
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rollout.run(40, batch_size=4, episodes_per_update=4)
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert seen == {"act": {1}, "train": {2}} and after == 1

