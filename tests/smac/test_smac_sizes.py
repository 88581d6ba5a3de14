"""get_env_info() against SMAC's own size formulas, on every map with a ``smac:`` block (and on
asymmetric test maps), with SMAC's defaults and with the options that change the sizes."""
from pathlib import Path

import pytest
import yaml

from ccoma.sim.units import MAPS_DIR
from ccoma.smac.env import MultiAgentEnv, StarCraft2Env

# SMAC's map_param_registry (smac/env/starcraft2/maps/smac_maps.py):
# name: (n_agents, n_enemies, limit, a_race, b_race, unit_type_bits)
REGISTRY = {
    "3m": (3, 3, 60, "T", "T", 0), "8m": (8, 8, 120, "T", "T", 0), "25m": (25, 25, 150, "T", "T", 0),
    "5m_vs_6m": (5, 6, 70, "T", "T", 0), "8m_vs_9m": (8, 9, 120, "T", "T", 0),
    "10m_vs_11m": (10, 11, 150, "T", "T", 0), "27m_vs_30m": (27, 30, 180, "T", "T", 0),
    "MMM": (10, 10, 150, "T", "T", 3), "MMM2": (10, 12, 180, "T", "T", 3), "2s3z": (5, 5, 120, "P", "P", 2),
    "3s5z": (8, 8, 150, "P", "P", 2), "3s5z_vs_3s6z": (8, 9, 170, "P", "P", 2), "3s_vs_3z": (3, 3, 150, "P", "P", 0),
    "3s_vs_4z": (3, 4, 200, "P", "P", 0), "3s_vs_5z": (3, 5, 250, "P", "P", 0), "1c3s5z": (9, 9, 180, "P", "P", 3),
    "2m_vs_1z": (2, 1, 150, "T", "P", 0), "corridor": (6, 24, 400, "P", "Z", 0), "6h_vs_8z": (6, 8, 150, "Z", "P", 0),
    "2s_vs_1sc": (2, 1, 300, "P", "Z", 0), "so_many_baneling": (7, 32, 100, "P", "Z", 0),
    "bane_vs_bane": (24, 24, 200, "Z", "Z", 2), "2c_vs_64zg": (2, 64, 400, "P", "Z", 0),
}


def smac_sizes(name, **opt):
    """SMAC's get_obs_size / get_state_size / n_actions for a registry map (StarCraft2Env's formulas)."""
    n_agents, n_enemies, limit, a_race, b_race, bits = REGISTRY[name]
    sa, se = int(a_race == "P"), int(b_race == "P")
    n_actions = 6 + n_enemies
    all_health = opt.get("obs_all_health", True)
    own_health = opt.get("obs_own_health", True) or all_health
    move = 4 + 8 * opt.get("obs_pathing_grid", False) + 9 * opt.get("obs_terrain_height", False)
    nf_en = 4 + bits + (1 + se if all_health else 0)
    nf_al = 4 + bits + (1 + sa if all_health else 0) + (n_actions if opt.get("obs_last_action", False) else 0)
    own = bits + (1 + sa if own_health else 0) + int(opt.get("obs_timestep_number", False))
    obs = move + n_enemies * nf_en + (n_agents - 1) * nf_al + own
    if opt.get("obs_instead_of_state", False):
        state = obs * n_agents
    else:
        state = n_enemies * (3 + se + bits) + n_agents * (4 + sa + bits)
        state += n_agents * n_actions * opt.get("state_last_action", True) + opt.get("state_timestep_number", False)
    return {"state_shape": state, "obs_shape": obs, "n_actions": n_actions, "n_agents": n_agents,
            "episode_limit": limit}


def _map(path, agents, enemies, map_type, limit=150):
    path.write_text(yaml.safe_dump({
        "name": path.stem, "size": [32, 32], "episode_limit": limit,
        "spawn_sites": {"west": {"center": [9.0, 16.0], "spread": 1.5}, "east": {"center": [23.0, 16.0], "spread": 1.5}},
        "agents": {"units": agents, "spawn": "west"}, "enemies": {"units": enemies, "spawn": "east"},
        "smac": {"map_type": map_type, "unit_type_bits": 0}}))
    return str(path)


@pytest.fixture(scope="module")
def asym_maps(tmp_path_factory):
    d = tmp_path_factory.mktemp("maps")
    return {"3s_vs_5z": _map(d / "3s_vs_5z.yaml", ["stalker"] * 3, ["zealot"] * 5, "stalkers", 250),
            "2m_vs_1z": _map(d / "2m_vs_1z.yaml", ["marine"] * 2, ["zealot"], "marines"),
            "6h_vs_8z": _map(d / "6h_vs_8z.yaml", ["hydralisk"] * 6, ["zealot"] * 8, "hydralisks")}


SHIPPED = sorted(p.stem for p in Path(MAPS_DIR).glob("*.yaml")
                 if p.stem != "units" and "smac" in (yaml.safe_load(p.read_text()) or {}))
OPTIONS = [{}, {"obs_last_action": True}, {"state_last_action": False}, {"obs_instead_of_state": True},
           {"obs_timestep_number": True},
           {"obs_all_health": False, "obs_own_health": False, "obs_pathing_grid": True, "obs_terrain_height": True,
            "state_timestep_number": True}]


def test_every_smac_map_is_in_smacs_registry():
    assert {"3m", "25m", "2s3z", "3s5z"} <= set(SHIPPED)
    assert set(SHIPPED) <= set(REGISTRY)


@pytest.mark.parametrize("opt", OPTIONS, ids=lambda o: ",".join(o) or "defaults")
@pytest.mark.parametrize("name", SHIPPED + ["3s_vs_5z", "2m_vs_1z", "6h_vs_8z"])
def test_env_info_matches_smac_formulas(name, opt, asym_maps):
    env = StarCraft2Env(map_name=asym_maps.get(name, name), seed=0, **opt)
    assert isinstance(env, MultiAgentEnv)
    assert env.get_env_info() == smac_sizes(name, **opt)
    obs, state = env.reset()
    assert len(obs) == env.n_agents and obs[0].shape == (env.get_obs_size(),)
    assert state.shape == (env.get_state_size(),)
    assert len(env.get_avail_agent_actions(0)) == env.get_total_actions()


@pytest.mark.parametrize("name,obs,state", [("3s_vs_5z", 48, 68), ("2m_vs_1z", 16, 26), ("6h_vs_8z", 78, 140)])
def test_asymmetric_sizes_quoted_from_smac(name, obs, state, asym_maps):
    info = StarCraft2Env(map_name=asym_maps[name], seed=0).get_env_info()
    assert (info["obs_shape"], info["state_shape"]) == (obs, state)


def test_2s3z_option_sizes_quoted_from_smac():
    assert StarCraft2Env(map_name="2s3z", obs_last_action=True).get_obs_size() == 124
    assert StarCraft2Env(map_name="2s3z", state_last_action=False).get_state_size() == 65
    assert StarCraft2Env(map_name="2s3z", obs_instead_of_state=True).get_state_size() == 400


def test_2s3z_unit_type_bits_per_side():
    # SMAC numbers allies stalker 0, zealot 1 and enemies zealot 0, stalker 1 (get_unit_type_id)
    env = StarCraft2Env(map_name="2s3z", seed=0)
    _, state = env.reset()
    allies = state[:35].reshape(5, 7)          # health, cooldown, x, y, shield, 2 type bits
    enemies = state[35:65].reshape(5, 6)       # health, x, y, shield, 2 type bits
    assert allies[:2, 5:].tolist() == [[1, 0]] * 2 and allies[2:, 5:].tolist() == [[0, 1]] * 3
    assert enemies[:2, 4:].tolist() == [[0, 1]] * 2 and enemies[2:, 4:].tolist() == [[1, 0]] * 3


def test_shields_only_for_a_protoss_side(asym_maps):
    # 2m_vs_1z: marines have no shield entry, the zealot has one (state: 2 x 4 + 1 x 4 + 2 x 7)
    env = StarCraft2Env(map_name=asym_maps["2m_vs_1z"], seed=0, state_last_action=False)
    _, state = env.reset()
    assert state.shape == (12,) and state[8] == 1.0 and state[11] == 1.0   # enemy health and shield full


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="obs_last_actoin"):
        StarCraft2Env(map_name="3m", obs_last_actoin=True)


def test_game_only_options_warn_once_by_name():
    import ccoma.smac.env.starcraft2 as sc

    sc._warned.clear()
    with pytest.warns(UserWarning, match="difficulty, replay_dir"):
        StarCraft2Env(map_name="3m", difficulty="3", replay_dir="/tmp/x")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        StarCraft2Env(map_name="3m", difficulty="3")       # named once only
        StarCraft2Env(map_name="3m", difficulty="7", game_version=None)  # SMAC's defaults: silent
