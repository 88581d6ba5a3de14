"""Observations and state against a unit-by-unit transcription of SMAC's ``get_obs_agent`` and
``get_state_dict``, on snapshots of a random 2s3z episode, under several option sets.

The oracle reads the simulator's units (positions, health, shields, cooldowns) and builds each
vector in SMAC's order with SMAC's per-side type ids (allies: stalker 0, zealot 1; enemies:
zealot 0, stalker 1), so a misplaced feature, a wrong bit order or an option ignored fails here.
"""
import math

import numpy as np
import pytest

from ccoma.smac.env import StarCraft2Env

ALLY_BIT, ENEMY_BIT = {"stalker": 0, "zealot": 1}, {"zealot": 0, "stalker": 1}


def units(env):
    b, sim = env._env.battle, env._env
    names = [sim.unit_types[t] for t in b.types[0].tolist()]
    st = b.stats[0].numpy()
    from ccoma.sim.units import COL

    return [dict(name=n, x=float(p[0]), y=float(p[1]), health=float(h), health_max=float(s[COL["hp"]]),
                 shield=float(sh), shield_max=float(s[COL["shield"]]), cooldown=float(cd),
                 max_cd=float(s[COL["cooldown_norm"]]), alive=bool(a))
            for n, p, h, sh, cd, a, s in zip(names, b.pos[0].numpy(), b.hp[0].numpy(), b.shield[0].numpy(),
                                             b.cooldown[0].numpy(), b.alive[0].numpy(), st)]


def oracle_obs(env, us, i, last_action, opt):
    N, E, A = env.n_agents, env.n_enemies, env.n_actions
    allies, enemies = us[:N], us[N:]
    ma, W, H = 2, 32, 32
    all_health = opt.get("obs_all_health", True)
    own_health = opt.get("obs_own_health", True) or all_health
    avail = env.get_avail_agent_actions(i)
    move = list(avail[2:6])
    u = allies[i]
    nf_en = 4 + 2 + (2 if all_health else 0)
    nf_al = 4 + 2 + (2 if all_health else 0) + (A if opt.get("obs_last_action") else 0)
    enemy_feats, ally_feats = np.zeros((E, nf_en)), np.zeros((N - 1, nf_al))
    own = np.zeros(2 + (2 if own_health else 0))
    if u["alive"]:
        x, y = u["x"], u["y"]
        ix, iy = int(x), int(y)
        pts = [(ix, iy + 2 * ma), (ix, iy - 2 * ma), (ix + 2 * ma, iy), (ix - 2 * ma, iy), (ix + ma, iy + ma),
               (ix - ma, iy - ma), (ix + ma, iy - ma), (ix - ma, iy + ma), (ix, iy)]
        inside = [0 <= px < W and 0 <= py < H for px, py in pts]
        if opt.get("obs_pathing_grid"):
            move += [float(v) for v in inside[:8]]
        if opt.get("obs_terrain_height"):
            move += [0.5 if v else 1.0 for v in inside]
        for e_id, e in enumerate(enemies):
            dist = math.hypot(e["x"] - x, e["y"] - y)
            if dist < 9 and e["alive"]:
                f = [avail[6 + e_id], dist / 9, (e["x"] - x) / 9, (e["y"] - y) / 9]
                if all_health:
                    f += [e["health"] / e["health_max"], e["shield"] / e["shield_max"]]
                bits = [0.0, 0.0]
                bits[ENEMY_BIT[e["name"]]] = 1.0
                enemy_feats[e_id] = f + bits
        for k, al_id in enumerate([j for j in range(N) if j != i]):
            a = allies[al_id]
            dist = math.hypot(a["x"] - x, a["y"] - y)
            if dist < 9 and a["alive"]:
                f = [1.0, dist / 9, (a["x"] - x) / 9, (a["y"] - y) / 9]
                if all_health:
                    f += [a["health"] / a["health_max"], a["shield"] / a["shield_max"]]
                bits = [0.0, 0.0]
                bits[ALLY_BIT[a["name"]]] = 1.0
                f += bits
                if opt.get("obs_last_action"):
                    f += list(last_action[al_id])
                ally_feats[k] = f
        o = [u["health"] / u["health_max"], u["shield"] / u["shield_max"]] if own_health else []
        bits = [0.0, 0.0]
        bits[ALLY_BIT[u["name"]]] = 1.0
        own = np.array(o + bits)
    else:
        move = [0.0] * (4 + 8 * bool(opt.get("obs_pathing_grid")) + 9 * bool(opt.get("obs_terrain_height")))
    out = np.concatenate([np.array(move, dtype=float), enemy_feats.ravel(), ally_feats.ravel(), own])
    if opt.get("obs_timestep_number"):
        out = np.append(out, env._episode_steps / env.episode_limit)
    return out


def oracle_state(env, us, last_action, opt):
    N = env.n_agents
    if opt.get("obs_instead_of_state"):
        return np.concatenate([oracle_obs(env, us, i, last_action, opt) for i in range(N)])
    ally, enemy = np.zeros((N, 7)), np.zeros((env.n_enemies, 6))
    for k, a in enumerate(us[:N]):
        if a["alive"]:
            ally[k, :5] = [a["health"] / a["health_max"], a["cooldown"] / a["max_cd"], (a["x"] - 16) / 32,
                           (a["y"] - 16) / 32, a["shield"] / a["shield_max"]]
            ally[k, ALLY_BIT[a["name"]] - 2] = 1
    for k, e in enumerate(us[N:]):
        if e["alive"]:
            enemy[k, :4] = [e["health"] / e["health_max"], (e["x"] - 16) / 32, (e["y"] - 16) / 32,
                            e["shield"] / e["shield_max"]]
            enemy[k, ENEMY_BIT[e["name"]] - 2] = 1
    state = np.append(ally.ravel(), enemy.ravel())
    if opt.get("state_last_action", True):
        state = np.append(state, last_action.ravel())
    if opt.get("state_timestep_number"):
        state = np.append(state, env._episode_steps / env.episode_limit)
    return state


@pytest.mark.parametrize("opt", [
    {},
    {"obs_last_action": True, "obs_timestep_number": True, "state_timestep_number": True,
     "obs_pathing_grid": True, "obs_terrain_height": True},
    {"obs_all_health": False, "state_last_action": False},
    {"obs_all_health": False, "obs_own_health": False, "obs_instead_of_state": True},
], ids=["defaults", "extras", "no-health", "instead-of-state"])
def test_obs_and_state_match_smacs_code(opt):
    env = StarCraft2Env(map_name="2s3z", seed=4, **opt)
    rng = np.random.default_rng(0)
    env.reset()
    last_action = np.zeros((env.n_agents, env.n_actions))
    seen_enemy = False
    for _ in range(40):
        us = units(env)
        for i in range(env.n_agents):
            np.testing.assert_allclose(env.get_obs_agent(i), oracle_obs(env, us, i, last_action, opt), atol=1e-5)
        np.testing.assert_allclose(env.get_state(), oracle_state(env, us, last_action, opt), atol=1e-5)
        seen_enemy |= any(env.get_avail_agent_actions(i)[6:].count(1) for i in range(env.n_agents))
        acts = [rng.choice(np.nonzero(env.get_avail_agent_actions(i))[0]) for i in range(env.n_agents)]
        last_action = np.eye(env.n_actions)[acts]
        _, terminated, _ = env.step(acts)
        if terminated:
            break
    assert seen_enemy  # the comparison covered enemies in sight, not only empty blocks
