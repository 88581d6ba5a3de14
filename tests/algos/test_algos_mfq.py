"""Mean-field Q on a large map: 25 marines a side (maps/25m.yaml), a short run on the real simulator."""
import dataclasses

import pytest
import torch

from ccoma.algos import registry
from ccoma.algos.mfq import neighbour_mask
from ccoma.data.buffer import EpisodeBuffer
from ccoma.data.rollout import Rollout

sim = pytest.importorskip("ccoma.sim.env")




def test_mfq_runs_on_25m_and_fits_its_batch():
    from ccoma.sim.maps import load_map

    torch.manual_seed(0)
    spec = dataclasses.replace(load_map("25m"), episode_limit=25)   # short episodes: a few hundred steps in all
    env = sim.SimEnv(spec, n_envs=4, seed=0)
    info = env.get_env_info()
    learner = registry.make("mfq", info, "cpu", {"batch_size": 8, "episodes_per_update": 4})
    assert learner.visible_index is not None and len(learner.visible_index) == 24
    buf = EpisodeBuffer(learner.scheme(), env.n_agents, env.episode_limit, 16)
    rollout = Rollout(env, learner, buf)
    losses = []
    rollout.run(300, on_train=lambda i, t: losses.append(i["loss"]))
    assert rollout.t_env >= 300 and len(buf) >= 8 and losses and all(l == l for l in losses)

    batch = buf.sample(8)
    # Neighbours come from the observation's ally "visible" bits: at the start every marine sees
    # the whole (tight) formation; later the dead see nobody and nobody sees the dead.
    nb = neighbour_mask(batch["obs"], learner.visible_index).float().sum(-1)   # [8, T+1, 25]
    assert torch.all(nb[:, 0] == 24)
    filled = batch["filled"].unsqueeze(-1).expand_as(nb)
    assert 0 < nb[filled].mean() < 24

    # Fixed batch and (by passing the same episode count) a fixed target network: plain regression.
    fitted = [learner.train_step(batch, rollout.t_env, episode=learner.episodes_seen)["loss"] for _ in range(60)]
    assert all(l == l for l in fitted)
    assert sum(fitted[-5:]) / 5 < 0.75 * sum(fitted[:5]) / 5   # the TD loss on a fixed batch goes down
