"""Every shipped map loads, builds a batched environment and plays random available actions through
the end of an episode; ``ccoma maps list`` and ``ccoma maps check`` accept all of them."""
import dataclasses

import pytest
import torch
from click.testing import CliRunner

from ccoma.cli import cli
from ccoma.sim.env import SimEnv
from ccoma.sim.maps import load_map
from ccoma.sim.units import MAPS_DIR

MAPS = sorted(p.stem for p in MAPS_DIR.glob("*.yaml") if p.stem != "units")
SMAC_MAPS = {"3m", "8m", "25m", "5m_vs_6m", "8m_vs_9m", "10m_vs_11m", "27m_vs_30m", "MMM", "MMM2", "2s3z", "3s5z",
             "3s5z_vs_3s6z", "3s_vs_3z", "3s_vs_4z", "3s_vs_5z", "1c3s5z", "2m_vs_1z", "corridor", "6h_vs_8z",
             "2s_vs_1sc", "so_many_baneling", "bane_vs_bane", "2c_vs_64zg"}


def test_every_smac_map_is_shipped():
    assert SMAC_MAPS <= set(MAPS)


@pytest.mark.parametrize("name", MAPS)
def test_random_play_to_the_end_of_an_episode(name):
    spec = load_map(name)
    short = dataclasses.replace(spec, episode_limit=min(spec.episode_limit, 10))  # a few seconds in all
    env = SimEnv(short, 2, seed=1)
    env.reset()
    g = torch.Generator().manual_seed(0)
    ended = torch.zeros(2, dtype=torch.bool)
    for _ in range(short.episode_limit):
        avail = env.get_avail_actions()
        assert bool(avail.any(-1).all())  # every agent, dead or alive, has an action
        acts = torch.multinomial(avail.reshape(-1, avail.shape[-1]).float(), 1, generator=g).reshape(avail.shape[:2])
        out = env.step(acts)
        assert torch.isfinite(out.obs).all() and torch.isfinite(out.state).all()
        assert out.obs.shape[-1] == env.obs_dim and out.state.shape[-1] == env.state_dim
        ended |= out.terminated | out.truncated
    assert bool(ended.all())
    assert len(spec.agents) == env.n_agents and len(spec.enemies) == env.n_enemies


def test_maps_list_and_check_accept_every_map():
    runner = CliRunner()
    res = runner.invoke(cli, ["maps", "list"])
    assert res.exit_code == 0
    listed = {line.split()[0] for line in res.output.splitlines()}
    assert listed == set(MAPS)
    for name in MAPS:
        res = runner.invoke(cli, ["maps", "check", name])
        assert res.exit_code == 0 and res.output.startswith(f"{name}: ok"), res.output
