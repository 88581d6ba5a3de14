"""Every shipped map loads, builds a batched environment and plays random available actions through
the end of an episode; ``ccoma maps list`` and ``ccoma maps check`` accept all of them."""
import dataclasses

import pytest
import torch
import yaml
from click.testing import CliRunner

from ccoma.cli import cli
from ccoma.sim.env import SimEnv
from ccoma.sim.maps import load_map
from ccoma.sim.units import MAPS_DIR

MAPS = sorted(p.stem for p in MAPS_DIR.glob("*.yaml") if p.stem != "units")
# SMAC's map_param_registry (oxwhirl/smac smac_maps.py): n_agents, n_enemies, limit, map_type, unit_type_bits
SMAC_REGISTRY = {
    "3m": (3, 3, 60, "marines", 0), "8m": (8, 8, 120, "marines", 0), "25m": (25, 25, 150, "marines", 0),
    "5m_vs_6m": (5, 6, 70, "marines", 0), "8m_vs_9m": (8, 9, 120, "marines", 0),
    "10m_vs_11m": (10, 11, 150, "marines", 0), "27m_vs_30m": (27, 30, 180, "marines", 0),
    "MMM": (10, 10, 150, "MMM", 3), "MMM2": (10, 12, 180, "MMM", 3),
    "2s3z": (5, 5, 120, "stalkers_and_zealots", 2), "3s5z": (8, 8, 150, "stalkers_and_zealots", 2),
    "3s5z_vs_3s6z": (8, 9, 170, "stalkers_and_zealots", 2), "3s_vs_3z": (3, 3, 150, "stalkers", 0),
    "3s_vs_4z": (3, 4, 200, "stalkers", 0), "3s_vs_5z": (3, 5, 250, "stalkers", 0),
    "1c3s5z": (9, 9, 180, "colossi_stalkers_zealots", 3), "2m_vs_1z": (2, 1, 150, "marines", 0),
    "corridor": (6, 24, 400, "zealots", 0), "6h_vs_8z": (6, 8, 150, "hydralisks", 0),
    "2s_vs_1sc": (2, 1, 300, "stalkers", 0), "so_many_baneling": (7, 32, 100, "zealots", 0),
    "bane_vs_bane": (24, 24, 200, "bane", 2), "2c_vs_64zg": (2, 64, 400, "colossus", 0),
}


@pytest.mark.parametrize("name", sorted(SMAC_REGISTRY))
def test_smac_maps_have_smacs_teams_limits_and_types(name):
    n_agents, n_enemies, limit, map_type, bits = SMAC_REGISTRY[name]
    spec = load_map(name)
    assert (len(spec.agents), len(spec.enemies), spec.episode_limit) == (n_agents, n_enemies, limit)
    raw = yaml.safe_load(open(spec.path)).get("smac")
    if raw is None:  # 3m, 25m, 2s3z, 3s5z get their smac block from the SMAC-interface branch
        assert name in {"3m", "25m", "2s3z", "3s5z"}
        return
    assert (raw["map_type"], raw["unit_type_bits"]) == (map_type, bits)
    assert set(spec.agents) <= set(raw["agent_types"]) and set(spec.enemies) <= set(raw["enemy_types"])
    if bits:
        assert len(raw["agent_types"]) == len(raw["enemy_types"]) == bits
        # SMAC's agents are sorted by unit type id, in the order of the type bits
        order = [raw["agent_types"].index(u) for u in spec.agents]
        assert order == sorted(order)


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
