"""Each reward option changes the reward as SMAC's code does, on scripted won and lost episodes.

The oracle below follows SMAC's ``reward_battle`` and ``step`` unit by unit (death trackers,
previous health + shield), on snapshots of the simulator's units taken around every step.
"""
import numpy as np
import pytest

from ccoma.sim.engine import SimConfig
from ccoma.sim.env import FixedSource
from ccoma.sim.units import load_units
from ccoma.smac.env import StarCraft2Env

WON = dict(ally_types=["stalker", "stalker"], enemy_types=["zealot"], ally_pos=[[10.0, 16.0], [10.0, 18.0]],
           enemy_pos=[[14.0, 17.0]])
LOST = dict(ally_types=["zealot"], enemy_types=["stalker", "stalker"], ally_pos=[[10.0, 16.0]],
            enemy_pos=[[14.0, 16.0], [14.0, 18.0]])


def smac_oracle(snaps, n_agents, enemy_types, opt, won, lost):
    """SMAC's reward of one step from (health+shield, alive) before and after it."""
    (prev, prev_alive), (now, now_alive) = snaps
    dv, neg = opt.get("reward_death_value", 10), opt.get("reward_negative_scale", 0.5)
    positive, sparse = opt.get("reward_only_positive", True), opt.get("reward_sparse", False)
    reward = 0.0
    if not sparse:
        delta_deaths = delta_ally = delta_enemy = 0.0
        for u in range(len(prev)):
            if not prev_alive[u]:
                continue  # died earlier: the death tracker skips it
            if u < n_agents:
                if not now_alive[u]:
                    if not positive:
                        delta_deaths -= dv * neg
                    delta_ally += prev[u] * neg
                else:
                    delta_ally += neg * (prev[u] - now[u])
            elif not now_alive[u]:
                delta_deaths += dv
                delta_enemy += prev[u]
            else:
                delta_enemy += prev[u] - now[u]
        reward = abs(delta_enemy + delta_deaths) if positive else delta_enemy + delta_deaths - delta_ally
    if won:
        reward = 1 if sparse else reward + opt.get("reward_win", 200)
    elif lost:
        reward = -1 if sparse else reward + opt.get("reward_defeat", 0)
    if opt.get("reward_scale", True):
        units = load_units()
        max_reward = len(enemy_types) * dv + opt.get("reward_win", 200) + sum(units[t].hp + units[t].shield
                                                                                 for t in enemy_types)
        reward /= max_reward / opt.get("reward_scale_rate", 20)
    return reward


def _snap(env):
    b = env._env.battle
    return (b.hp + b.shield)[0].numpy().copy(), b.alive[0].numpy().copy()


def play(episode, opt):
    """Agents attack the first available enemy (else stop); returns [(reward, expected)], last info."""
    env = StarCraft2Env(map_name="2s3z", seed=3, source=FixedSource(**episode),
                        config=SimConfig(opponent="sticky"), **opt)
    env.reset()
    rows, terminated = [], False
    while not terminated:
        acts = []
        for i in range(env.n_agents):
            av = env.get_avail_agent_actions(i)
            acts.append(next((a for a in range(6, env.n_actions) if av[a]), 0 if av[0] else 1))
        before = _snap(env)
        reward, terminated, info = env.step(acts)
        after = _snap(env)
        lost = terminated and not after[1][:env.n_agents].any() and after[1][env.n_agents:].any()
        rows.append((reward, smac_oracle((before, after), env.n_agents, episode["enemy_types"], opt,
                                         info["battle_won"], lost)))
    return rows, info


OPTS = [{}, {"reward_sparse": True}, {"reward_only_positive": False},
        {"reward_only_positive": False, "reward_negative_scale": 1.0, "reward_defeat": -50},
        {"reward_scale": False}, {"reward_death_value": 5, "reward_win": 100, "reward_scale_rate": 10}]


@pytest.mark.parametrize("episode,outcome", [(WON, "won"), (LOST, "lost")])
def test_reward_options_follow_smac(episode, outcome):
    totals, last = [], []
    for opt in OPTS:
        rows, info = play(episode, opt)
        last.append(rows[-1][0])
        got, want = np.array(rows).T
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=str(opt))
        assert info["battle_won"] == (outcome == "won")
        totals.append(got.sum())
    # the scripted episodes exercise every option: each changes the episode's return
    assert len({round(t, 6) for t in totals}) == len(OPTS)
    if outcome == "won":
        assert totals[0] == pytest.approx(20.0, abs=1e-3)  # SMAC's scaled maximum: a win without losses
        assert last[1] == pytest.approx(1 / (360 / 20))  # sparse win: 1 / (max_reward / 20), one zealot
    else:
        assert last[1] == pytest.approx(-1 / (10 * 2 + 200 + 2 * 160) * 20)  # sparse loss, two stalkers


def test_episode_end_info_counts_the_dead():
    rows, info = play(LOST, {})
    assert info == {"battle_won": False, "dead_allies": 1, "dead_enemies": 0}
