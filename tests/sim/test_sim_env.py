"""SMAC's interface on the simulator: sizes, layout, masks, reward, endings, batching, determinism."""
import numpy as np
import pytest
import torch

from ccoma.sim.engine import SimConfig
from ccoma.sim.env import FixedSource, SimEnv
from ccoma.sim.maps import load_map


def rand_actions(avail, g):
    return torch.where(avail, torch.rand(avail.shape, generator=g), -1.0).argmax(-1)


@pytest.mark.parametrize("name,obs,state,actions,agents", [("2s3z", 80, 120, 11, 5), ("3s5z", 128, 216, 14, 8),
                                                           ("3m", 30, 48, 9, 3), ("dynamic_5v5", 80, 120, 11, 5)])
def test_sizes_match_smac(name, obs, state, actions, agents):
    env = SimEnv.from_map(name, n_envs=2)
    env.reset()
    info = env.get_env_info()
    assert (info["obs_shape"], info["state_shape"], info["n_actions"], info["n_agents"]) == (obs, state, actions, agents)
    assert env.get_obs().shape == (2, agents, obs)
    assert env.get_state().shape == (2, state)
    assert env.get_avail_actions().shape == (2, agents, actions)


def test_observation_layout_at_start_of_2s3z():
    env = SimEnv.from_map("2s3z", n_envs=1)
    env.reset()
    o = env.get_obs()[0]          # [5, 80]
    # 4 move bits, then 5 enemies x 8 (out of sight at the start: zeros), 4 allies x 8, own 4
    assert torch.equal(o[:, :4], torch.ones(5, 4))
    assert torch.count_nonzero(o[:, 4:44]) == 0
    allies = o[:, 44:76].reshape(5, 4, 8)
    assert torch.equal(allies[..., 0], torch.ones(5, 4))          # every ally visible
    assert torch.allclose(allies[..., 4:6], torch.ones(5, 4, 2))  # full health and shields
    own = o[:, 76:]
    assert torch.allclose(own[:, :2], torch.ones(5, 2))
    types = env.unit_types
    assert types == ("stalker", "zealot")
    assert torch.equal(own[:2, 2:], torch.tensor([[1.0, 0.0]] * 2))   # agents 0-1 stalkers
    assert torch.equal(own[2:, 2:], torch.tensor([[0.0, 1.0]] * 3))   # agents 2-4 zealots
    # distances/offsets are in units of sight range: |dx|, |dy| <= 1 for visible allies
    assert allies[..., 1:4].abs().max() <= 1.0
    s = env.get_state()[0]
    ally_state = s[:35].reshape(5, 7)
    assert torch.allclose(ally_state[:, 0], torch.ones(5)) and torch.count_nonzero(ally_state[:, 1]) == 0
    assert (ally_state[:, 2] < 0).all()       # west of centre
    enemy_state = s[35:65].reshape(5, 6)
    assert (enemy_state[:, 1] > 0).all()      # east of centre
    assert torch.count_nonzero(s[65:]) == 0   # no last actions yet


def test_enemy_features_when_in_sight_and_attack_mask():
    src = FixedSource(["stalker"], ["zealot", "zealot"], [[10.0, 16.0]], [[15.0, 16.0], [10.0, 26.0]])
    env = SimEnv(load_map("2s3z"), 1, source=src, config=SimConfig(opponent="passive"))
    env.reset()
    o, av = env.get_obs()[0, 0], env.get_avail_actions()[0, 0]
    # [no-op, stop, N, S, E, W, attack e0, attack e1]: e0 at 5 (<= 6), e1 at 10 (> 6)
    assert av.tolist() == [False, True, True, True, True, True, True, False]
    e0 = o[4:4 + 8]
    assert e0[0] == 1.0 and e0[1] == pytest.approx(5 / 9) and e0[2] == pytest.approx(5 / 9) and e0[3] == 0.0
    assert torch.count_nonzero(o[12:20]) == 0          # e1 out of sight (10 >= 9)


def test_dead_agent_only_noop_and_zero_obs():
    src = FixedSource(["zealot", "stalker"], ["stalker"], [[10.0, 16.0], [3.0, 3.0]], [[15.0, 16.0]])
    env = SimEnv(load_map("2s3z"), 1, source=src, config=SimConfig(opponent="hold"))
    env.reset()
    for _ in range(200):
        out = env.step(torch.tensor([[1, 1]]) * env.battle.alive[:, :2])
        if not bool(env.battle.alive[0, 0]):
            break
    assert not bool(out.done[0])
    av = env.get_avail_actions()[0, 0]
    assert av.tolist() == [True] + [False] * 6
    assert torch.count_nonzero(env.get_obs()[0, 0]) == 0


def test_perfect_win_reward_sums_to_20():
    # one stalker kites a dummy zealot from range: a win without loss
    src = FixedSource(["stalker", "stalker"], ["zealot"], [[10.0, 16.0], [10.0, 18.0]], [[15.0, 16.0]])
    env = SimEnv(load_map("2s3z"), 1, source=src, config=SimConfig(opponent="passive"))
    env.reset()
    total = 0.0
    for _ in range(120):
        out = env.step(torch.tensor([[6, 6]]))
        total += float(out.reward[0])
        if bool(out.done[0]):
            break
    assert bool(out.won[0]) and bool(out.terminated[0]) and not bool(out.truncated[0])
    assert total == pytest.approx(20.0, abs=1e-3)
    assert float(out.episode_return[0]) == pytest.approx(total, abs=1e-3)


def test_loss_and_timeout():
    # a zealot that never closes in dies to a stalker that holds its ground: a loss
    src = FixedSource(["zealot"], ["stalker"], [[10.0, 16.0]], [[15.0, 16.0]])
    env = SimEnv(load_map("2s3z"), 1, source=src, config=SimConfig(opponent="hold"))
    env.reset()
    for _ in range(120):
        out = env.step(torch.tensor([[1]]) * env.battle.alive[:, :1])
        if bool(out.done[0]):
            break
    assert bool(out.terminated[0]) and not bool(out.won[0]) and not bool(out.truncated[0])
    # nobody in range and nobody moves: the episode limit ends it, neither win nor loss
    src = FixedSource(["stalker"], ["stalker"], [[3.0, 16.0]], [[29.0, 16.0]])
    env = SimEnv(load_map("2s3z"), 1, source=src, config=SimConfig(opponent="hold"))
    env.reset()
    for t in range(120):
        out = env.step(torch.tensor([[1]]))
        assert bool(out.done[0]) == (t == 119)
    assert bool(out.truncated[0]) and not bool(out.terminated[0]) and not bool(out.won[0])
    assert int(out.episode_length[0]) == 120
    assert int(env.battle.t[0]) == 0  # reset automatically


def _rollout(env, n_steps, seed):
    g = torch.Generator().manual_seed(seed)
    env.reset()
    rows = []
    for _ in range(n_steps):
        a = rand_actions(env.get_avail_actions(), g)
        out = env.step(a)
        rows.append((out.reward.clone(), out.done.clone(), out.obs.clone(), env.get_obs().clone()))
    return rows


def test_batched_equals_separate_environments():
    seeds = torch.tensor([11, 22, 33, 44])
    batched = SimEnv.from_map("2s3z", n_envs=4, env_seeds=seeds)
    singles = [SimEnv.from_map("2s3z", n_envs=1, env_seeds=seeds[i:i + 1]) for i in range(4)]
    # identical action streams: draw each env's actions from its own generator
    gens = [torch.Generator().manual_seed(100 + i) for i in range(4)]
    gens_b = [torch.Generator().manual_seed(100 + i) for i in range(4)]
    batched.reset()
    for s in singles:
        s.reset()
    dones = 0
    for _ in range(150):
        av = batched.get_avail_actions()
        a = torch.cat([rand_actions(av[i:i + 1], gens_b[i]) for i in range(4)])
        out = batched.step(a)
        for i, s in enumerate(singles):
            assert torch.equal(s.get_avail_actions()[0], av[i])
            ai = rand_actions(s.get_avail_actions(), gens[i])
            assert torch.equal(ai[0], a[i])
            o = s.step(ai)
            assert torch.allclose(o.reward[0], out.reward[i], atol=1e-5)
            assert bool(o.done[0]) == bool(out.done[i])
            assert torch.allclose(o.obs[0], out.obs[i], atol=1e-5)
            assert torch.allclose(s.get_obs()[0], batched.get_obs()[i], atol=1e-5)
        dones += int(out.done.sum())
    assert dones >= 4  # the comparison crossed automatic resets


def test_deterministic_under_seed():
    a = _rollout(SimEnv.from_map("dynamic_5v5", n_envs=8, seed=5), 80, seed=1)
    b = _rollout(SimEnv.from_map("dynamic_5v5", n_envs=8, seed=5), 80, seed=1)
    c = _rollout(SimEnv.from_map("dynamic_5v5", n_envs=8, seed=6), 80, seed=1)
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[2], y[2]) for x, y in zip(a, b))
    assert any(not torch.equal(x[2], y[2]) for x, y in zip(a, c))


def test_smac_readme_random_loop():
    # SMAC's README loop, unchanged apart from the import line
    from ccoma.smac.env import StarCraft2Env

    env = StarCraft2Env(map_name="2s3z", seed=0)
    env_info = env.get_env_info()
    n_actions = env_info["n_actions"]
    n_agents = env_info["n_agents"]
    assert (env_info["obs_shape"], env_info["state_shape"], n_actions) == (80, 120, 11)
    np.random.seed(0)
    returns = []
    for e in range(3):
        env.reset()
        terminated = False
        episode_reward = 0
        steps = 0
        while not terminated:
            obs = env.get_obs()
            state = env.get_state()
            actions = []
            for agent_id in range(n_agents):
                avail_actions = env.get_avail_agent_actions(agent_id)
                avail_actions_ind = np.nonzero(avail_actions)[0]
                action = np.random.choice(avail_actions_ind)
                actions.append(action)
            reward, terminated, _ = env.step(actions)
            episode_reward += reward
            steps += 1
        assert len(obs) == n_agents and obs[0].shape == (80,) and state.shape == (120,)
        assert 0 < steps <= env_info["episode_limit"] and episode_reward >= 0
        returns.append(episode_reward)
    env.close()
    assert env.get_stats()["battles_game"] == 3
    with pytest.raises(AssertionError, match="cannot perform"):
        env.reset()
        env.step([0] * n_agents)  # no-op is only for dead agents


def test_compiled_step_equals_eager_for_environments_stepped_in_turn():
    # two compiled environments of different batch sizes stepped in turn, with automatic resets in
    # between: the compiled step skips Dynamo's guards, so each must still run its own graph. The
    # compiled environments also reset in a compiled call over the whole batch (SimEnv._reset_where):
    # every battle, opponent and episode field must be what the eager reset (SimEnv._reset_idx) leaves,
    # on a map whose enemies attack-move to a site of their own (so_many_baneling's enemy_goal) too.
    maps = {3: "dynamic_5v5", 2: "so_many_baneling"}
    envs = {B: (SimEnv.from_map(maps[B], n_envs=B, seed=B), SimEnv.from_map(maps[B], n_envs=B, seed=B, compile=True))
            for B in (3, 2)}
    gens = {B: torch.Generator().manual_seed(B) for B in envs}
    for e, c in envs.values():
        assert e._reset_fn is None and c._reset_fn is not None
        e.reset()
        c.reset()
    dones = {B: 0 for B in envs}
    exact = ("types", "alive", "order_kind", "order_target", "t", "episode")
    close = ("pos", "hp", "shield", "cooldown", "energy", "order_point", "rally")
    for _ in range(90):
        for B, (e, c) in envs.items():
            assert torch.equal(e.get_avail_actions(), c.get_avail_actions())
            a = rand_actions(e.get_avail_actions(), gens[B])
            oe, oc = e.step(a), c.step(a)
            assert oc.reward.shape == (B,)
            assert torch.allclose(oe.reward, oc.reward, atol=1e-4)
            assert torch.equal(oe.done, oc.done) and torch.equal(oe.won, oc.won)
            assert torch.allclose(e.get_obs(), c.get_obs(), atol=1e-4)
            assert torch.allclose(e.get_state(), c.get_state(), atol=1e-4)
            for f in exact:
                assert torch.equal(getattr(e.battle, f), getattr(c.battle, f)), f
            for f in close:
                assert torch.allclose(getattr(e.battle, f), getattr(c.battle, f), atol=1e-4), f
            assert torch.equal(e.opponent.target, c.opponent.target) and torch.equal(e.last_actions, c.last_actions)
            assert torch.equal(e.phase, c.phase) and torch.equal(e.unseen, c.unseen)
            assert torch.allclose(e.max_reward, c.max_reward) and torch.allclose(e.ep_return, c.ep_return, atol=1e-4)
            dones[B] += int(oe.done.sum())
    assert min(dones.values()) >= 2  # automatic resets happened between compiled steps, in both


def test_a_reseeded_env_deals_what_a_new_env_of_that_seed_deals():
    """The env contract's reseed (the job's evaluation pool relies on it): same episodes, same steps."""
    from ccoma.scenarios import load_scenario

    sc = load_scenario("shifting_spawn")
    used = SimEnv(sc.map, 4, source=sc.source("train", seed=3), seed=3)
    used.reset()
    for _ in range(5):
        used.step(torch.randint(0, 2, (4, used.n_agents)))
    used.reseed(11, sc.phase_source(sc.deploy_phases[-1], seed=11))
    new = SimEnv(sc.map, 4, source=sc.phase_source(sc.deploy_phases[-1], seed=11), seed=11)
    g = torch.Generator().manual_seed(0)
    for env in (used, new):
        env.reset()
    for _ in range(30):
        avail = new.get_avail_actions()
        assert torch.equal(used.get_avail_actions(), avail)
        assert torch.equal(used.get_obs(), new.get_obs()) and torch.equal(used.get_state(), new.get_state())
        actions = torch.multinomial(avail.flatten(0, 1).float(), 1, generator=g).view(4, -1)
        a, b = used.step(actions), new.step(actions)
        assert torch.equal(a.reward, b.reward) and torch.equal(a.terminated, b.terminated)


def test_worlds_drawn_ahead_are_the_worlds_drawn_at_each_reset():
    """A scenario source draws every env's next episodes in one call (``ahead``) and keeps them until
    the step changes: the episodes dealt are exactly those of drawing at each reset."""
    from ccoma.scenarios import load_scenario

    sc = load_scenario("shifting_spawn")

    def play(ahead: bool):
        src = sc.source("deploy", seed=3)
        src.set_step(150_000)
        assert src.draws_ahead
        src.draws_ahead = ahead
        env = SimEnv(sc.map, 8, source=src, seed=5)
        env.reset()
        g = torch.Generator().manual_seed(0)
        seen, resets = [], 0
        for t in range(240):
            if t % 80 == 0:  # the phase mixture moves on, as at a job's chunk boundary
                src.set_step(150_000 + t * 8)
            avail = env.get_avail_actions()
            out = env.step(torch.multinomial(avail.flatten(0, 1).float(), 1, generator=g).view(8, -1))
            resets += int(out.done.sum())
            seen.append((env.get_obs().clone(), out.reward, out.phase, out.unseen))
        return seen, resets, getattr(src, "_drawn", None)

    a, resets, kept = play(True)
    b, _, none = play(False)
    assert resets >= 8 and kept is not None and none is None   # resets crossed, and were served ahead
    assert all(torch.equal(x, y) for p, q in zip(a, b) for x, y in zip(p, q))
