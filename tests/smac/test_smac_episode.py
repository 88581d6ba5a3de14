"""SMAC's episode ends, info keys, get_stats, seeds, time options and observation contents; SMAC's
README random-agent loop on every map with a ``smac:`` block."""
from pathlib import Path

import numpy as np
import pytest
import yaml

from ccoma.sim.engine import SimConfig
from ccoma.sim.units import MAPS_DIR
from ccoma.smac.env import StarCraft2Env

SMAC_MAPS = sorted(p.stem for p in Path(MAPS_DIR).glob("*.yaml")
                   if p.stem != "units" and "smac" in (yaml.safe_load(p.read_text()) or {}))


@pytest.fixture
def far_map(tmp_path):
    """Two marines a side, out of each other's sight, episode limit 5: every episode times out."""
    p = tmp_path / "far.yaml"
    p.write_text(yaml.safe_dump({
        "name": "far", "size": [32, 32], "episode_limit": 5,
        "spawn_sites": {"w": {"center": [3.0, 16.0], "spread": 1.0}, "e": {"center": [29.0, 16.0], "spread": 1.0}},
        "agents": {"units": ["marine", "marine"], "spawn": "w"}, "enemies": {"units": ["marine", "marine"], "spawn": "e"},
        "smac": {"map_type": "marines", "unit_type_bits": 0}}))
    return str(p)


@pytest.mark.parametrize("continuing", [False, True])
def test_timeout_is_terminal_and_flagged_only_when_continuing(far_map, continuing):
    env = StarCraft2Env(map_name=far_map, seed=1, continuing_episode=continuing, config=SimConfig(opponent="hold"))
    for episode in range(2):
        env.reset()
        for t in range(5):
            reward, terminated, info = env.step([1, 1])
            assert terminated == (t == 4) and reward == 0.0
        assert info["battle_won"] is False and info["dead_allies"] == 0 and info["dead_enemies"] == 0
        assert ("episode_limit" in info) == continuing
        if continuing:
            assert info["episode_limit"] is True
    assert env.get_stats() == {"battles_won": 0, "battles_game": 2, "battles_draw": 2, "win_rate": 0.0,
                               "timeouts": 2, "restarts": 0}
    with pytest.raises(RuntimeError, match="reset"):
        env.step([1, 1])


def test_seed_none_draws_a_random_seed_and_a_seed_reproduces(far_map):
    assert StarCraft2Env(map_name="3m").seed() != StarCraft2Env(map_name="3m").seed()
    a, b = StarCraft2Env(map_name="3m", seed=7), StarCraft2Env(map_name="3m", seed=7)
    assert a.seed() == 7 and np.array_equal(a.reset()[1], b.reset()[1])
    assert not np.array_equal(StarCraft2Env(map_name="3m").reset()[1], StarCraft2Env(map_name="3m").reset()[1])


def test_observation_options_fill_smacs_slots():
    env = StarCraft2Env(map_name="3m", seed=0, obs_last_action=True, obs_timestep_number=True,
                        state_timestep_number=True)
    env.reset()
    env.step([4, 2, 1])                              # east, north, stop
    obs, state = env.get_obs(), env.get_state()
    n_actions = env.n_actions                        # 9; ally block: 5 features + 9 last-action bits
    ally0_of_agent1 = obs[1][4 + 3 * 5: 4 + 3 * 5 + 5 + n_actions]
    assert ally0_of_agent1[0] == 1.0 and ally0_of_agent1[5:].tolist() == np.eye(n_actions)[4].tolist()
    assert obs[0][-1] == pytest.approx(1 / 60) and state[-1] == pytest.approx(1 / 60)
    assert state[-1 - 3 * n_actions:-1].reshape(3, n_actions).argmax(1).tolist() == [4, 2, 1]
    both = StarCraft2Env(map_name="3m", seed=0, obs_instead_of_state=True)
    obs, state = both.reset()
    assert np.array_equal(state, np.concatenate(obs))


def test_pathing_and_height_around_an_agent_by_the_west_edge(far_map):
    # SMAC's points: N, S, E, W at 2 x move_amount, then NE, SW, SE, NW at move_amount (and, for height, under)
    env = StarCraft2Env(map_name=far_map, seed=0, obs_pathing_grid=True, obs_terrain_height=True)
    obs, _ = env.reset()
    assert env._env.battle.pos[0, 0, 0].item() < 4          # the west point (x - 4) lies outside the arena
    assert obs[0][4:12].tolist() == [1, 1, 1, 0, 1, 1, 1, 1]
    assert obs[0][12:21].tolist() == [0.5, 0.5, 0.5, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5]


@pytest.mark.parametrize("step_mul,move_amount,dist", [(8, 2, 3.15 * 8 / 22.4), (16, 2, 2.0),
                                                       (16, 4, 3.15 * 16 / 22.4)])
def test_step_mul_and_move_amount(far_map, step_mul, move_amount, dist):
    # a marine walks at 3.15/s toward a point move_amount away: one step covers min(speed x time, move_amount)
    env = StarCraft2Env(map_name=far_map, seed=0, step_mul=step_mul, move_amount=move_amount,
                        config=SimConfig(opponent="hold", collisions=False))
    env.reset()
    x0 = env._env.battle.pos[0, 0, 0].item()
    env.step([4, 1])
    assert env._env.battle.pos[0, 0, 0].item() - x0 == pytest.approx(dist, abs=0.02)


@pytest.mark.parametrize("rest", [False, True])
def test_heuristic_ai_replaces_actions(rest):
    env = StarCraft2Env(map_name="3m", seed=0, heuristic_ai=True, heuristic_rest=rest)
    env.reset()
    actions = [1, 1, 1]
    env.step(actions)  # enemies are out of range at the start: attack orders, or moves east with heuristic_rest
    assert actions == [4, 4, 4] if rest else min(actions) >= 6
    for _ in range(60):
        _, terminated, info = env.step([0, 0, 0])  # not available to living agents, but ignored: the heuristic decides
        if terminated:
            break
    assert terminated and info["dead_enemies"] > 0


@pytest.mark.parametrize("map_name", SMAC_MAPS)
def test_smac_readme_random_agents_run_unchanged(map_name):
    # SMAC's README loop (smac/examples/random_agents.py) with the import changed and one episode
    from ccoma.smac.env import StarCraft2Env

    env = StarCraft2Env(map_name=map_name)
    env_info = env.get_env_info()

    n_actions = env_info["n_actions"]
    n_agents = env_info["n_agents"]

    n_episodes = 1

    for e in range(n_episodes):
        env.reset()
        terminated = False
        episode_reward = 0

        while not terminated:
            obs = env.get_obs()
            state = env.get_state()
            # env.render()  # Uncomment for rendering

            actions = []
            for agent_id in range(n_agents):
                avail_actions = env.get_avail_agent_actions(agent_id)
                avail_actions_ind = np.nonzero(avail_actions)[0]
                action = np.random.choice(avail_actions_ind)
                actions.append(action)

            reward, terminated, _ = env.step(actions)
            episode_reward += reward

        print("Total reward in episode {} = {}".format(e, episode_reward))

    env.close()
    assert len(obs) == n_agents and state.shape == (env_info["state_shape"],) and n_actions == env.n_actions
    assert episode_reward >= 0 and env.get_stats()["battles_game"] == 1


@pytest.mark.parametrize("instead", [False, True])
def test_state_dict_visibility_and_unit_types(instead):
    env = StarCraft2Env(map_name="2s3z", seed=0, obs_instead_of_state=instead, state_timestep_number=True)
    env.reset()
    env.step([1] * 5)
    d = env.get_state_dict()
    assert d["allies"].shape == (5, 7) and d["enemies"].shape == (5, 6) and d["last_action"].shape == (5, 11)
    assert d["last_action"].argmax(1).tolist() == [1] * 5 and d["timestep"] == pytest.approx(1 / 120)
    assert env.ally_state_attr_names == ["health", "energy/cooldown", "rel_x", "rel_y", "shield", "type_0", "type_1"]
    if not instead:
        assert np.array_equal(np.concatenate([d["allies"].ravel(), d["enemies"].ravel(), d["last_action"].ravel(),
                                              [d["timestep"]]]).astype(np.float32), env.get_state())
    vis = env.get_visibility_matrix()
    assert vis.shape == (5, 10) and vis[:, :5].all() == False  # noqa: E712 (the diagonal is never set)
    seen = np.stack(env.get_obs())[:, 4:44].reshape(5, 5, 8)[..., 1] > 0  # the enemy blocks' distance feature
    assert vis[0, 1] and np.array_equal(vis[:, 5:], seen)
    assert env.get_unit_types() == ["stalker"] * 2 + ["zealot"] * 3 + ["stalker"] * 2 + ["zealot"] * 3
