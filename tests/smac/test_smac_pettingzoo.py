"""ccoma.pettingzoo: PettingZoo's own parallel API test, names, masks, truncation on timeouts, seeding."""
import warnings

import numpy as np
import pytest
import yaml

pytest.importorskip("pettingzoo")
from pettingzoo.test import parallel_api_test  # noqa: E402

from ccoma import pettingzoo as cpz  # noqa: E402
from ccoma.sim.engine import SimConfig  # noqa: E402


@pytest.mark.parametrize("kwargs", [{"map_name": "2s3z"}, {"map_name": "3m", "obs_last_action": True},
                                    {"scenario": "shifting_spawn"}])
def test_parallel_api_test_passes(kwargs):
    env = cpz.parallel_env(seed=0, **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parallel_api_test(env, num_cycles=400)
    assert not [w for w in caught if "agent" in str(w.message).lower()], [str(w.message) for w in caught]


def test_names_spaces_and_masks():
    env = cpz.parallel_env(map_name="2s3z", seed=0)
    obs, infos = env.reset()
    assert env.possible_agents == ["stalker_0", "stalker_1", "zealot_0", "zealot_1", "zealot_2"]
    assert env.action_space("zealot_0").n == 10 and env.state().shape == (120,)
    o = obs["stalker_0"]
    assert o["observation"].shape == (80,) and o["action_mask"].dtype == np.int8
    assert o["action_mask"].tolist() == env.env.get_avail_agent_actions(0)[1:]
    assert env.observation_space("stalker_0").contains(o)


@pytest.fixture
def far_map(tmp_path):
    p = tmp_path / "far.yaml"
    p.write_text(yaml.safe_dump({
        "name": "far", "size": [32, 32], "episode_limit": 4,
        "spawn_sites": {"w": {"center": [3.0, 16.0], "spread": 1.0}, "e": {"center": [29.0, 16.0], "spread": 1.0}},
        "agents": {"units": ["marine", "marine"], "spawn": "w"}, "enemies": {"units": ["marine"], "spawn": "e"}}))
    return str(p)


def test_timeout_truncates_and_battle_end_terminates(far_map):
    env = cpz.parallel_env(map_name=far_map, seed=0, config=SimConfig(opponent="hold"))
    env.reset()
    for t in range(4):
        obs, rew, term, trunc, info = env.step({a: 0 for a in env.agents})   # 0 = SMAC's stop
    assert trunc == {"marine_0": True, "marine_1": True} and not any(term.values()) and env.agents == []
    assert info["marine_0"]["battle_won"] is False and rew["marine_0"] == 0.0
    env = cpz.parallel_env(map_name="3m", seed=0, heuristic_ai=True)
    env.reset()
    while env.agents:
        obs, rew, term, trunc, info = env.step({})
    assert all(term.values()) and not any(trunc.values())


def test_reset_seed_reproduces_episodes():
    env = cpz.parallel_env(map_name="3m")
    first = env.reset(seed=5)[0]["marine_0"]["observation"]
    env.step({a: 0 for a in env.agents})
    again = env.reset(seed=5)[0]["marine_0"]["observation"]
    other = env.reset(seed=6)[0]["marine_0"]["observation"]
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_docs_example_runs_the_tutorial_loop():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docs" / "pettingzoo_example.py"
    spec = importlib.util.spec_from_file_location("pettingzoo_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    returns = example.main("3m", episodes=2, seed=0)
    assert len(returns) == 2 and all(r >= 0 for r in returns)
