"""The StarCraft II backend against a stand-in game that speaks pysc2's controller calls (no game here).

The stand-in (tests/envs/sc2_fake_controller.py) is driven by the built-in simulator, so the same unit
layout can be played on both backends and compared feature by feature.
"""
import pytest
import torch

pytest.importorskip("pysc2_evolved")

import sc2_fake_controller as fake  # noqa: E402  (tests/envs is on sys.path: no __init__.py)
from ccoma.envs import make  # noqa: E402
from ccoma.envs.sc2 import protocol  # noqa: E402
from ccoma.sim.engine import SimConfig  # noqa: E402
from ccoma.sim.env import FixedSource  # noqa: E402
from ccoma.sim.maps import load_map, parse_map  # noqa: E402
from ccoma.sim.observe import ObsOptions  # noqa: E402
from ccoma.sim.reward import RewardOptions  # noqa: E402

RL_FIRST = fake.N_DATA_UNITS - len(protocol.RL_UNITS)


@pytest.fixture(autouse=True)
def stand_in(monkeypatch):
    monkeypatch.setenv("CCOMA_SC2_CONTROLLER", "sc2_fake_controller:make_controller")
    fake.CONTROLLERS.clear()
    fake.KNOBS.update(sim=SimConfig(cooldown_jitter=False), size=(32, 32))
    yield
    fake.KNOBS["size"] = (32, 32)


def close_fight():
    """2 stalkers + 1 zealot against 1 zealot + 1 stalker, close enough to shoot from the start."""
    return FixedSource(["stalker", "stalker", "zealot"], ["zealot", "stalker"],
                       [[10, 16], [10, 18], [11, 14]], [[14, 16], [15, 18]], unit_types=["stalker", "zealot"])


def random_actions(avail, gen):
    u = torch.rand(avail.shape, generator=gen)
    return torch.where(avail, u, torch.full_like(u, -1.0)).argmax(-1)


def test_episode_spec_becomes_debug_commands():
    env = make("sc2", "2s3z", 1, seed=0, source=close_fight())
    env.reset()
    ctrl = fake.CONTROLLERS[-1]
    create = [r for k, r in ctrl.requests if k == "create_game"][0]
    assert create.local_map.map_path == "SMAC_Maps/32x32_flat.SC2Map" and not create.realtime
    assert [p.type for p in create.player_setup] == [1, 2]  # Participant, Computer
    assert create.player_setup[1].race == protocol.RACES["protoss"] and create.player_setup[1].difficulty == 7
    join = [r for k, r in ctrl.requests if k == "join_game"][0]
    assert join.options.raw and join.race == protocol.RACES["protoss"]
    made = [c.create_unit for c in [r for k, r in ctrl.requests if k == "debug"][-1]]
    got = [(c.owner, c.unit_type, c.pos.x, c.pos.y, c.quantity) for c in made]
    rl = {n: RL_FIRST + protocol.RL_UNITS.index(n) for n in ("stalker", "zealot")}
    assert got == [(1, rl["stalker"], 10, 16, 1), (1, rl["stalker"], 10, 18, 1), (1, rl["zealot"], 11, 14, 1),
                   (2, 73, 14, 16, 1), (2, 74, 15, 18, 1)]
    # the slots hold the created units in spec order although the game lists them in another order
    assert env.tags[0].tolist() == ctrl.tags
    first = list(ctrl.tags)
    env.reset()  # the next episode first removes every unit
    debug = [r for k, r in ctrl.requests if k == "debug"]
    kill = debug[-2][0].kill_unit
    assert sorted(kill.tag) == sorted(first) and all(c.HasField("create_unit") for c in debug[-1])


def assert_backends_agree(where, steps=70, n_envs=2, seed=3, source=None, **options):
    """Play ``where`` on both backends with the same random actions and SMAC options (``obs_options``,
    ``reward_options``): obs, state, avail and every step's outcome must be equal. Returns (sim's, sc2's)
    StepOuts and the two envs."""
    sim = make("sim", where, n_envs, seed=seed, config=fake.KNOBS["sim"], source=source, **options)
    sc2 = make("sc2", where, n_envs, seed=seed, source=source, **options)
    sim.reset()
    sc2.reset()
    gen = torch.Generator().manual_seed(0)
    assert sc2.get_env_info() == sim.get_env_info()
    outs = []
    for t in range(steps):
        for get in ("get_obs", "get_state", "get_avail_actions"):
            a, b = getattr(sim, get)(), getattr(sc2, get)()
            assert torch.allclose(a.float(), b.float(), atol=1e-5), f"{get} differs at step {t}"
        acts = random_actions(sim.get_avail_actions(), gen)
        o1, o2 = sim.step(acts), sc2.step(acts)
        for f in ("terminated", "truncated", "won", "episode_length"):
            assert torch.equal(getattr(o1, f), getattr(o2, f)), f"{f} differs at step {t}"
        assert torch.allclose(o1.reward, o2.reward, atol=1e-5), f"reward differs at step {t}"
        outs.append((o1, o2))
    return outs, sim, sc2


@pytest.mark.parametrize("map_name", ["2s3z", "3m"])
def test_obs_state_avail_equal_simulator(map_name):
    outs, _, _ = assert_backends_agree(map_name)
    assert sum(int(o1.done.sum()) for o1, _ in outs) >= 1  # the comparison went through an automatic reset


OPTION_SETS = {
    "last-action-timestep-signed": dict(
        obs_options=ObsOptions(obs_last_action=True, state_last_action=False, obs_timestep_number=True,
                               state_timestep_number=True),
        reward_options=RewardOptions(reward_only_positive=False, reward_defeat=-3.0, reward_scale=False)),
    "obs-as-state-sparse": dict(
        obs_options=ObsOptions(obs_instead_of_state=True, obs_all_health=False, obs_pathing_grid=True,
                               obs_terrain_height=True),
        reward_options=RewardOptions(reward_sparse=True)),
}


@pytest.mark.parametrize("name", sorted(OPTION_SETS))
def test_smac_options_equal_simulator(name):
    outs, sim, sc2 = assert_backends_agree("2s3z", steps=60, **OPTION_SETS[name])
    assert sc2.layout == sim.layout and sc2.obs_dim != make("sim", "2s3z").obs_dim  # the options took effect
    assert sum(int(o1.done.sum()) for o1, _ in outs) >= 1  # through an automatic reset (timestep, last actions)
    if OPTION_SETS[name]["obs_options"].obs_instead_of_state:
        assert torch.equal(sc2.get_state(), sc2.get_obs().flatten(1))


def test_negative_enemy_damage_is_rewarded_as_smac(monkeypatch):
    """Enemy shields rising during a step (regeneration) make the damage negative: SMAC rewards its
    absolute value by default, and subtracts it with reward_only_positive off; both backends alike."""
    import ccoma.sim.env as sim_env

    real = sim_env.tick

    def tick(b, cfg, loops, arena, sub=0, *mech):
        real(b, cfg, loops, arena, sub, *mech)
        if sub == cfg.substeps - 1:  # on the third step every living enemy gains 5 shield
            b.shield[:, b.N:] += 5.0 * (b.alive[:, b.N:] & (b.t == 2)[:, None])

    monkeypatch.setattr(sim_env, "tick", tick)
    monkeypatch.setattr(fake, "tick", tick)
    far = FixedSource(["stalker"], ["stalker"], [[4, 16]], [[28, 16]], unit_types=["stalker", "zealot"])
    max_reward = (10 + 200 + 80 + 80) / 20  # one enemy stalker: death value, win, health + shield, to 20
    for positive, sign in ((True, 1.0), (False, -1.0)):
        opts = RewardOptions(reward_only_positive=positive)
        outs, _, _ = assert_backends_agree("2s3z", steps=4, n_envs=1, source=far, reward_options=opts)
        for o in outs[2]:  # far apart: the shields are the step's only change
            assert float(o.reward[0]) == pytest.approx(sign * 5.0 / max_reward, abs=1e-5)


def test_medivac_end_rule_on_sc2():
    """SMAC's only_medivac_left on sc2: agents left with only a medivac have lost (reward_defeat is paid);
    enemies down to a lone medivac have lost too. The stand-in cannot heal, so the simulator (which
    heals) would play these differently: checked on sc2 against SMAC's rule directly."""
    kinds = ["marauder", "marine", "medivac"]
    opts = RewardOptions(reward_defeat=-7.0, reward_scale=False)
    lose = FixedSource(["marine", "medivac"], ["marauder", "marauder"], [[15, 16], [14, 16]],
                       [[16.5, 16], [16.5, 17]], unit_types=kinds)
    win = FixedSource(["marauder"] * 3, ["marine", "medivac"], [[15, 15], [15, 16], [15, 17]],
                      [[16.5, 16], [17, 16]], unit_types=kinds)
    for source, action, won in ((lose, 1, False), (win, 6, True)):
        env = make("sc2", "2s3z", 1, seed=0, source=source, reward_options=opts)
        env.reset()
        ctrl = fake.CONTROLLERS[-1]
        for _ in range(60):
            prev = enemy_units(ctrl)
            out = env.step(torch.full((1, env.n_agents), action), auto_reset=False)
            if bool(out.done[0]):
                break
        alive, N = env.battle.alive[0], env.n_agents
        lone = alive[N:] if won else alive[:N]
        assert lone.tolist() == ([False, True] if won else [False, True])  # only the medivac is left
        assert bool(out.terminated[0]) and bool(out.won[0]) == won and not bool(out.truncated[0])
        bonus = 200.0 if won else -7.0
        assert float(out.reward[0]) == pytest.approx(smac_reward(prev, enemy_units(ctrl)) + bonus, abs=1e-4)


def test_smac_view_on_sc2_takes_smac_options():
    import numpy as np

    from ccoma.smac.env import StarCraft2Env

    opts = dict(map_name="2s3z", seed=5, obs_last_action=True, reward_only_positive=False, state_timestep_number=True)
    sc2 = StarCraft2Env(**opts, difficulty="A", backend="sc2")
    sim = StarCraft2Env(**opts, config=fake.KNOBS["sim"])
    assert sc2.get_obs_size() == 124  # SMAC's 2s3z obs with the allies' last actions
    assert sc2.get_env_info() == sim.get_env_info()
    for env in (sim, sc2):
        env.reset()
    create = [r for k, r in fake.CONTROLLERS[-1].requests if k == "create_game"][0]
    assert create.player_setup[1].difficulty == 10  # SMAC's "A" (CheatInsane)
    rng = np.random.default_rng(0)
    for t in range(30):
        assert np.allclose(sim.get_obs(), sc2.get_obs(), atol=1e-5) and np.allclose(sim.get_state(), sc2.get_state(),
                                                                                   atol=1e-5), f"step {t}"
        avail = np.array(sim.get_avail_actions())
        acts = [int(rng.choice(np.flatnonzero(row))) for row in avail]
        (r1, d1, i1), (r2, d2, i2) = sim.step(acts), sc2.step(acts)
        assert r1 == pytest.approx(r2, abs=1e-5) and (d1, i1) == (d2, i2), f"step {t}"
        if d1:
            break
    sc2.close()
    assert fake.CONTROLLERS[-1].quit_called


def test_actions_become_raw_commands():
    env = make("sc2", "2s3z", 1, seed=0, source=close_fight())
    env.reset()
    ctrl = fake.CONTROLLERS[-1]
    avail = env.get_avail_actions()[0]
    assert bool(avail[0, 6]) and bool(avail[1, 7])  # stalkers can attack both enemies (within 6)
    pos = env.battle.pos[0].clone()
    env.step(torch.tensor([[6, 7, 2]]))
    req = [r for k, r in ctrl.requests if k == "actions"][-1]
    cmds = [a.action_raw.unit_command for a in req.actions]
    assert [(c.ability_id, list(c.unit_tags)) for c in cmds] == [(23, [ctrl.tags[0]]), (23, [ctrl.tags[1]]),
                                                               (16, [ctrl.tags[2]])]
    assert [c.target_unit_tag for c in cmds[:2]] == [ctrl.tags[3], ctrl.tags[4]]
    assert (cmds[2].target_world_space_pos.x, cmds[2].target_world_space_pos.y) == (float(pos[2, 0]),
                                                                                   float(pos[2, 1]) + 2.0)
    pos = env.battle.pos[0].clone()
    env.step(torch.tensor([[1, 3, 5]]))  # stop, move south, move west
    cmds = [a.action_raw.unit_command for a in [r for k, r in ctrl.requests if k == "actions"][-1].actions]
    assert [c.ability_id for c in cmds] == [4, 16, 16] and not cmds[0].HasField("target_world_space_pos")
    assert (cmds[1].target_world_space_pos.y, cmds[2].target_world_space_pos.x) == (
        pytest.approx(float(pos[1, 1]) - 2.0), pytest.approx(float(pos[2, 0]) - 2.0))


def smac_reward(prev, now, death=10.0):
    """SMAC's reward_battle (reward_only_positive) on raw units (tag -> (health, shield)) of the enemies,
    before scaling: the absolute value, as SMAC's."""
    total = 0.0
    for tag, (h, s) in prev.items():
        if tag not in now:
            total += death + h + s
        else:
            total += h + s - sum(now[tag])
    return abs(total)


def enemy_units(ctrl):
    return {u.tag: (u.health, u.shield) for u in ctrl.observe().observation.raw_data.units if u.owner == 2}


def test_reward_and_win_counted_as_smac():
    # three stalkers against one zergling: the agents focus it and win
    src = FixedSource(["stalker"] * 3, ["zergling"], [[10, 15], [10, 16], [10, 17]], [[14, 16]],
                      unit_types=["stalker", "zergling"])
    env = make("sc2", "2s3z", 1, seed=0, source=src)
    env.reset()
    ctrl = fake.CONTROLLERS[-1]
    max_reward = (1 * 10 + 200 + 35) / 20  # SMAC: n_enemies * death + win + enemy health + shield, to 20
    total = 0.0
    for _ in range(20):
        prev = enemy_units(ctrl)
        out = env.step(torch.tensor([[6, 6, 6]]))
        expected = smac_reward(prev, enemy_units(ctrl)) + (200.0 if bool(out.won[0]) else 0.0)
        assert float(out.reward[0]) == pytest.approx(expected / max_reward, abs=1e-5)
        total += float(out.reward[0])
        if bool(out.done[0]):
            break
    assert bool(out.won[0]) and bool(out.terminated[0]) and not bool(out.truncated[0])
    assert total == pytest.approx(20.0, abs=1e-4)  # the whole enemy, its death and the win: SMAC's maximum
    assert float(out.episode_return[0]) == pytest.approx(total, abs=1e-4)


def test_timeout_and_loss_counted_as_smac():
    raw = {"name": "far", "size": [32, 32], "episode_limit": 4,
           "spawn_sites": {"w": {"center": [4, 16]}, "e": {"center": [28, 16]}},
           "agents": {"units": ["marine"], "spawn": "w"}, "enemies": {"units": ["marine"], "spawn": "e"}}
    spec = parse_map(raw, "test")
    env = make("sc2", spec, 1, seed=0)
    env.reset()
    outs = [env.step(torch.tensor([[1]])) for _ in range(4)]  # stand still, far apart
    assert [bool(o.truncated[0]) for o in outs] == [False, False, False, True]
    assert not any(bool(o.terminated[0]) or bool(o.won[0]) for o in outs)
    # a lone zergling against two stalkers next to it loses: terminated, not won, no win bonus
    src = FixedSource(["zergling"], ["stalker", "stalker"], [[16, 16]], [[17, 16], [16, 17.2]],
                      unit_types=["zergling", "stalker"])
    env = make("sc2", "2s3z", 1, seed=0, source=src)
    env.reset()
    for _ in range(40):
        out = env.step(torch.tensor([[int(env.get_avail_actions()[0, 0, 0] == 0)]]))
        if bool(out.done[0]):
            break
    assert bool(out.terminated[0]) and not bool(out.won[0]) and float(out.reward[0]) < 1.0


def test_controller_raising_mid_episode_is_restarted_and_episode_dropped():
    from ccoma.algos import registry
    from ccoma.data.rollout import Rollout

    env = make("sc2", "2s3z", 2, seed=1)
    env.reset()
    assert len(fake.CONTROLLERS) == 2
    second = fake.CONTROLLERS[1]
    second.fail_at = second.steps + 2  # the second game fails on the second agent step
    gen = torch.Generator().manual_seed(0)
    out = env.step(random_actions(env.get_avail_actions(), gen))
    assert not bool(out.dropped.any())
    out = env.step(random_actions(env.get_avail_actions(), gen))
    assert out.dropped.tolist() == [False, True]
    assert bool(out.truncated[1]) and not bool(out.terminated[1]) and not bool(out.won[1]) and out.reward[1] == 0
    assert env.stats == {"restarts": 1, "dropped_episodes": 1}
    assert len(fake.CONTROLLERS) == 3 and second.quit_called  # a fresh game replaced it
    assert env.battle.t.tolist() == [2, 0] and bool(env.battle.alive[1].all())  # new episode in the new game
    env.step(random_actions(env.get_avail_actions(), gen))  # and it plays on

    # a rollout neither stores nor counts the dropped episode
    learner = registry.make("coma", env.get_env_info(), "cpu")
    roll = Rollout(env, learner, buffer=None, mode="greedy")
    fake.CONTROLLERS[0].fail_at = fake.CONTROLLERS[0].steps + 1
    stats = roll.step()
    assert stats["won"].numel() == 0 and roll.episodes == 0 and env.stats["dropped_episodes"] == 2


def test_a_game_that_never_starts_is_one_clear_error(monkeypatch):
    from ccoma.errors import CcomaError

    monkeypatch.setattr(fake.FakeController, "join_game", lambda self, req: (_ for _ in ()).throw(OSError("refused")))
    env = make("sc2", load_map("3m"), 1, seed=0)
    with pytest.raises(CcomaError, match="failed 4 times in a row.*ccoma doctor"):
        env.reset()


def test_a_map_of_another_size_is_one_clear_error():
    from ccoma.errors import CcomaError

    fake.KNOBS["size"] = (40, 40)
    env = make("sc2", "2s3z", 1, seed=0)
    with pytest.raises(CcomaError, match="SMAC_Maps/32x32_flat.SC2Map is 40x40 but ccoma map '2s3z' is 32x32"):
        env.reset()
