"""Arithmetic of the unit mechanics: medivac heal and energy, baneling splash and suicide, air units,
the spine crawler, SMAC's medivac end rules, and the static switches that keep other maps unchanged."""
import pytest
import torch

from ccoma.sim.engine import SimConfig
from ccoma.sim.env import FixedSource, SimEnv
from ccoma.sim.maps import load_map
from ccoma.sim.mechanics import HEAL
from ccoma.sim.units import GAME_LOOPS_PER_SECOND, load_units

UNITS = load_units()
STEP_S = 8 / GAME_LOOPS_PER_SECOND  # one agent step: 8 game loops


def make(agents, enemies, apos, epos, opponent="passive", substeps=8):
    src = FixedSource(agents, enemies, apos, epos)
    cfg = SimConfig(substeps=substeps, cooldown_jitter=False, opponent=opponent)
    env = SimEnv(load_map("3m"), 1, source=src, config=cfg)
    env.reset()
    return env


def act(env, *actions):
    return env.step(torch.tensor([list(actions)]), auto_reset=False)


def test_medivac_autoheal_rate_and_energy():
    env = make(["marine", "medivac"], ["marine"], [[10, 16], [11.5, 16]], [[28, 16]])
    b = env.battle
    b.hp[0, 0] = 20.0
    act(env, 1, 1)  # both stop: an idle medivac heals the nearest damaged ally in range
    med = UNITS["medivac"]
    healed = med.heal * STEP_S
    assert float(b.hp[0, 0]) == pytest.approx(20.0 + healed, abs=1e-4)
    energy = med.energy_start - healed * med.heal_cost + med.energy_regen * STEP_S
    assert float(b.energy[0, 1]) == pytest.approx(energy, abs=1e-4)
    b.hp[0, 0] = 44.0  # never beyond full health
    act(env, 1, 1)
    assert float(b.hp[0, 0]) == pytest.approx(45.0)


def test_medivac_heal_is_limited_by_energy():
    env = make(["marine", "medivac"], ["marine"], [[10, 16], [11.5, 16]], [[28, 16]])
    b = env.battle
    b.hp[0, 0], b.energy[0, 1] = 10.0, 1.0
    act(env, 1, 1)
    med = UNITS["medivac"]
    # 1 energy buys 1/heal_cost hit points; regeneration during the step adds a little more
    assert 10.0 + 1.0 / med.heal_cost - 1e-3 <= float(b.hp[0, 0]) < 10.0 + (1.0 + med.energy_regen * STEP_S) / med.heal_cost + 1e-3
    assert float(b.energy[0, 1]) < med.energy_regen * STEP_S + 1e-4


def test_medivac_actions_target_allies_as_in_smac():
    env = make(["marine", "marine", "medivac"], ["marine", "marine", "marine"],
               [[10, 16], [10, 21], [15.5, 16]], [[28, 16], [28, 18], [28, 20]])
    avail = env.get_avail_actions()[0]
    # the medivac (agent 2): ally 0 within 6 is healable, ally 1 is 7.4 away, itself (a medivac) never
    assert avail[2, 6:].tolist() == [True, False, False]
    assert not avail[0, 6:].any()  # the marines see no enemy within 6
    env.battle.hp[0, 0] = 5.0
    act(env, 1, 1, 6)  # heal ally 0: out of heal range (4), so the medivac flies to it first
    b = env.battle
    assert int(b.order_kind[0, 2]) == HEAL and int(b.order_target[0, 2]) == 0
    assert float(b.pos[0, 2, 0]) < 15.5 and float(b.hp[0, 0]) > 5.0


def test_baneling_splash_hits_enemies_in_radius_with_their_own_bonus_and_dies():
    agents = ["baneling", "zergling"]
    enemies = ["zergling", "zergling", "zealot", "stalker", "zergling"]
    apos = [[10, 16], [11, 17.2]]
    epos = [[10.8, 16], [10, 17.5], [8.5, 16], [10, 14.2], [10, 19.2]]
    env = make(agents, enemies, apos, epos)
    act(env, 1, 1)  # the idle baneling explodes on the zergling that touches it
    b = env.battle
    bane = UNITS["baneling"]
    light = bane.damage + bane.bonus["light"]
    assert not bool(b.alive[0, 0])                                   # suicide
    assert float(b.hp[0, 1]) == UNITS["zergling"].hp                 # no friendly fire
    assert not bool(b.alive[0, 2]) and not bool(b.alive[0, 3])       # 35 kills a zergling (35 hp)
    assert float(b.shield[0, 4]) == pytest.approx(UNITS["zealot"].shield - light)     # zealot is light
    assert float(b.shield[0, 5]) == pytest.approx(UNITS["stalker"].shield - bane.damage)  # stalker is not
    assert float(b.hp[0, 6]) == UNITS["zergling"].hp                 # 2.8 away from its edge: outside 2.2


def test_ground_weapons_cannot_hit_a_medivac_and_it_does_not_collide():
    env = make(["marauder", "marine"], ["medivac"], [[10, 16], [10, 18]], [[12, 17]])
    act(env, 6, 5)  # the marauder is ordered to attack the medivac: it follows it but cannot fire
    # (the marine walks away meanwhile: a moving unit never fires)
    b = env.battle
    assert float(b.hp[0, 2]) == UNITS["medivac"].hp
    act(env, 1, 6)  # the marine can: 6 damage - 1 armor
    assert float(b.hp[0, 2]) == pytest.approx(UNITS["medivac"].hp - (6 - UNITS["medivac"].armor))
    env2 = make(["marine"], ["medivac"], [[10, 16]], [[10, 16.1]])
    act(env2, 1)  # overlapping a flying unit pushes nobody
    assert float(env2.battle.pos[0, 0, 1]) == pytest.approx(16.0)


def test_spine_crawler_fires_and_never_moves():
    env = make(["stalker"], ["spine_crawler"], [[10, 16]], [[16, 16]], opponent="hold")
    b = env.battle
    sc, st = UNITS["spine_crawler"], UNITS["stalker"]
    act(env, 1)
    per_hit = sc.damage + sc.bonus["armored"]  # the stalker is armored
    assert float(b.shield[0, 0]) == pytest.approx(st.shield - per_hit)
    for _ in range(4):
        act(env, 4)  # walk east into it
    assert b.pos[0, 1].tolist() == pytest.approx([16.0, 16.0])
    gap = float((b.pos[0, 0] - b.pos[0, 1]).norm())
    assert gap >= st.radius + sc.radius - 1e-3


def test_spine_crawler_ignores_agents_outside_its_range():
    env = make(["stalker"], ["spine_crawler"], [[7, 16]], [[16, 16]], opponent="sticky")
    act(env, 1)  # 9 away: in its sight (11), out of its weapon range (7 + radii)
    assert int(env.opponent.target[0, 0]) == -1
    assert env.battle.pos[0, 1].tolist() == pytest.approx([16.0, 16.0])


def test_enemy_banelings_run_at_the_nearest_agent_and_medivacs_heal():
    env = make(["zealot", "zealot"], ["baneling"], [[10, 24], [10, 10]], [[12, 12]], opponent="sticky")
    act(env, 1, 1)
    assert int(env.opponent.target[0, 0]) == 1
    env = make(["marine"], ["marine", "medivac"], [[4, 16]], [[24, 16], [26, 16]], opponent="sticky")
    env.battle.hp[0, 1] = 10.0
    act(env, 1)
    b = env.battle
    assert int(b.order_kind[0, 2]) == HEAL and int(b.order_target[0, 2]) == 1
    assert float(b.hp[0, 1]) > 10.0


def test_smac_medivac_end_rules():
    # agents: only the medivac left -> lost (SMAC's only_medivac_left for allies)
    env = make(["marine", "medivac"], ["marine"], [[10, 16], [6, 16]], [[12, 16]], opponent="hold")
    env.battle.hp[0, 0] = 0.1
    out = act(env, 1, 1)
    assert bool(out.terminated[0]) and not bool(out.won[0])
    # enemies: a lone medivac left -> won
    env = make(["marine"], ["marine", "medivac"], [[10, 16]], [[12, 16], [16, 16]])
    env.battle.hp[0, 1] = 0.1
    out = act(env, 6)
    assert bool(out.terminated[0]) and bool(out.won[0])


@pytest.mark.parametrize("name,on", [("2s3z", set()), ("dynamic_5v5", set()), ("MMM", {"heal", "air"}),
                                     ("bane_vs_bane", {"splash", "suicide"}), ("2s_vs_1sc", {"static"})])
def test_mechanics_switch_on_only_where_the_roster_needs_them(name, on):
    m = SimEnv(load_map(name), 1).mech
    flags = {f for f in ("heal", "splash", "suicide", "air", "static") if getattr(m, f)}
    assert flags == on


def test_state_holds_a_medivacs_energy_in_its_cooldown_slot():
    """SMAC's get_state: a medivac's second ally feature is energy / 200, not a weapon cooldown."""
    env = SimEnv.from_map("MMM", n_envs=2)
    env.reset()
    b = env.battle
    b.energy[:, : env.n_agents] = torch.linspace(20, 180, env.n_agents)
    state = env.observer.state(b, env.last_actions)
    L = env.layout
    width = 4 + L.ally_shield + L.n_types          # health, cooldown/energy, x, y, (shield), type bits
    ally = state[:, : L.n_agents * width].reshape(2, L.n_agents, width)
    medivac = [i for i, n in enumerate(env.map.agents) if n == "medivac"]
    assert medivac
    for i in medivac:
        assert torch.allclose(ally[:, i, 1], b.energy[:, i] / 200.0)
    others = [i for i in range(L.n_agents) if i not in medivac]
    assert not torch.allclose(ally[:, others, 1], b.energy[:, others] / 200.0)


def test_zerg_hit_points_regenerate_every_step_up_to_full():
    env = make(["hydralisk", "zealot"], ["zergling"], [[10, 16], [10, 20]], [[28, 16]])
    b = env.battle
    b.hp[0, 0], b.hp[0, 1], b.hp[0, 2] = 30.0, 40.0, 35.0
    act(env, 1, 1)
    rate = UNITS["hydralisk"].hp_regen
    assert rate == pytest.approx(0.27 * 1.4)  # 0.27 per Normal-speed second, at Faster
    assert float(b.hp[0, 0]) == pytest.approx(30.0 + rate * STEP_S, abs=1e-4)
    assert float(b.hp[0, 1]) == 40.0            # protoss hit points never regenerate
    assert float(b.hp[0, 2]) == 35.0            # a zergling at full health stays at full health
    b.hp[0, 0] = UNITS["hydralisk"].hp - 0.1
    act(env, 1, 1)
    assert float(b.hp[0, 0]) == pytest.approx(UNITS["hydralisk"].hp)
    b.hp[0, 0] = 0.0  # the dead stay dead
    b.alive[0, 0] = False
    act(env, 1, 1)
    assert float(b.hp[0, 0]) == 0.0


def test_maps_without_zerg_do_not_switch_regeneration_on():
    assert not make(["marine"], ["marine"], [[10, 16]], [[28, 16]]).mech.regen
    assert make(["marine"], ["zergling"], [[10, 16]], [[28, 16]]).mech.regen


def test_colossus_lances_hit_the_line_across_the_target_and_nothing_off_it():
    # the colossus fires along +x at the zealot at (16, 16): the lance sweeps x = 16, y in 16 +- 1.25;
    # its ally zealot stands on the line (allies are spared) out of reach of every enemy
    env = make(["colossus", "zealot"], ["zealot", "zergling", "zergling"],
               [[10, 16], [16, 17.2]], [[16, 16], [16, 14.3], [17.2, 16]])
    b = env.battle
    act(env, 6, 1)  # the colossus attacks enemy 0; the ally stops
    col, zl = UNITS["colossus"], UNITS["zergling"]
    per_hit = col.damage + col.bonus["light"]
    assert float(b.shield[0, 2]) == pytest.approx(UNITS["zealot"].shield - 2 * per_hit)   # the target: both beams
    regen = zl.hp_regen * STEP_S
    assert float(b.hp[0, 3]) == pytest.approx(zl.hp - 2 * per_hit + regen, abs=1e-4)  # edge 1.325 from the centre
    assert float(b.hp[0, 4]) == zl.hp                                                 # behind the target: off the line
    assert float(b.shield[0, 1]) == UNITS["zealot"].shield and float(b.hp[0, 1]) == UNITS["zealot"].hp


def test_colossus_lance_misses_units_just_beyond_its_reach():
    zl = UNITS["zergling"]
    edge = 1.25 + 0.15 + zl.radius
    env = make(["colossus"], ["zealot", "zergling", "zergling"], [[10, 16]],
               [[16, 16], [16, 16 + edge - 0.02], [16, 16 - edge - 0.02]])
    act(env, 6)
    hp = env.battle.hp[0, 2:].tolist()
    assert hp[0] < zl.hp - 1 and hp[1] == zl.hp


def test_a_map_lays_its_own_unit_stats_over_the_table():
    from ccoma.errors import ConfigError
    from ccoma.sim.maps import parse_map
    from ccoma.sim.units import COL
    import yaml

    env = SimEnv(load_map("6h_vs_8z"), 1)
    env.reset()
    assert env.battle.hp[0, :6].tolist() == [80.0] * 6                     # SMAC's Hydralisk_RL
    assert env.battle.stats[0, 0, COL["hp"]] == 80.0                         # and its maximum (obs, state)
    assert UNITS["hydralisk"].hp == 90 and load_map("6h_vs_8z").units()["zealot"] == UNITS["zealot"]
    raw = yaml.safe_load(open(load_map("6h_vs_8z").path))
    for bad, says in (({"hydralisk": {"hp": -1}}, "must be positive"), ({"marine": {"hp": 10}}, "not on this map"),
                      ({"hydralisk": {"lifemax": 80}}, "unknown field 'lifemax'"),
                      ({"hydralisk": {"race": "terran"}}, "race is fixed")):
        with pytest.raises(ConfigError, match=says):
            parse_map({**raw, "unit_stats": bad}, "m.yaml")
