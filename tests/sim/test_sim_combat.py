"""Combat arithmetic of the simulator, checked against duels computed from the stats table."""
import math

import pytest
import torch

from ccoma.sim.engine import SimConfig
from ccoma.sim.env import FixedSource, SimEnv
from ccoma.sim.maps import load_map
from ccoma.sim.units import GAME_LOOPS_PER_SECOND, load_units

UNITS = load_units()
EXACT = SimConfig(substeps=8, cooldown_jitter=False, opponent="passive")  # one tick per game loop


def reference_hits(attacker: str, target: str) -> list[tuple[float, float]]:
    """(shield, hp) of the target after each attack, by StarCraft II's rules, hit by hit."""
    a, t = UNITS[attacker], UNITS[target]
    per_hit = a.damage + sum(v for attr, v in a.bonus.items() if attr in t.attributes)
    shield, hp, out = t.shield, t.hp, []
    while hp > 0:
        for _ in range(a.hits):
            if hp <= 0:
                break
            absorbed = min(shield, per_hit)
            shield -= absorbed
            spill = per_hit - absorbed
            if spill > 0:
                hp -= max(spill - t.armor, 0.5)
        out.append((shield, max(hp, 0.0)))
    return out


def duel(attacker: str, target: str, distance: float, config=EXACT, steps=200):
    """Agent ``attacker`` holds position (stop) next to a passive ``target``; record the target."""
    src = FixedSource([attacker], [target], [[10.0, 16.0]], [[10.0 + distance, 16.0]])
    env = SimEnv(load_map("2s3z"), 1, source=src, config=config)
    env.reset()
    trace = []
    for t in range(steps):
        b = env.battle
        trace.append((float(b.shield[0, 1]), float(b.hp[0, 1])))
        out = env.step(torch.tensor([[1]]))
        if bool(out.done[0]):
            trace.append((0.0, 0.0))
            return trace, t + 1, out
    return trace, None, out


@pytest.mark.parametrize("attacker,target", [("stalker", "zealot"), ("stalker", "stalker"),
                                             ("zealot", "stalker"), ("zealot", "zealot"),
                                             ("colossus", "zealot"), ("marauder", "stalker"),
                                             ("hydralisk", "zealot"), ("marine", "marine")])
def test_duel_damage_sequence_matches_reference(attacker, target):
    ref = reference_hits(attacker, target)
    a, t = UNITS[attacker], UNITS[target]
    dist = a.radius + t.radius + min(a.range, 1.0) * 0.5  # inside weapon range, edge to edge
    trace, steps, out = duel(attacker, target, dist)
    assert steps is not None and bool(out.won[0])
    seen = []
    for s in trace:
        if not seen or s != seen[-1]:
            seen.append(s)
    start = (t.shield, t.hp)
    assert seen[0] == pytest.approx(start)
    assert len(seen) - 1 == len(ref), f"{attacker} needs {len(ref)} attacks on a {target}"
    for got, want in zip(seen[1:], ref):
        assert got == pytest.approx(want, abs=1e-4)


def test_stalker_kills_zealot_in_13_hits_about_16_seconds():
    ref = reference_hits("stalker", "zealot")
    assert len(ref) == 13
    assert ref[3] == pytest.approx((0.0, 99.0))  # the 4th hit spills 1 point onto hit points
    _, steps, _ = duel("stalker", "zealot", 5.0)
    cooldown_loops = UNITS["stalker"].cooldown * GAME_LOOPS_PER_SECOND
    seconds = steps * 8 / GAME_LOOPS_PER_SECOND
    expected = 12 * cooldown_loops / GAME_LOOPS_PER_SECOND
    assert abs(seconds - expected) <= UNITS["stalker"].cooldown  # within one weapon cooldown


@pytest.mark.parametrize("substeps", [1, 2, 4])
def test_default_and_coarse_ticks_keep_duel_time_within_one_cooldown(substeps):
    cfg = SimConfig(substeps=substeps, cooldown_jitter=False, opponent="passive")
    _, exact, _ = duel("stalker", "zealot", 5.0)
    _, coarse, _ = duel("stalker", "zealot", 5.0, config=cfg)
    step_s = 8 / GAME_LOOPS_PER_SECOND
    assert abs(coarse - exact) * step_s <= UNITS["stalker"].cooldown


def test_bonus_vs_armored_only():
    # stalker vs stalker gets +5 (armored); vs zealot (light) none
    s_vs_s = reference_hits("stalker", "stalker")
    trace, _, _ = duel("stalker", "stalker", 5.0)
    assert trace[0] == (80.0, 80.0)
    first = next(x for x in trace if x != (80.0, 80.0))
    assert first == pytest.approx((62.0, 80.0)) == s_vs_s[0]
    first_z = next(x for x in duel("stalker", "zealot", 5.0)[0] if x != (50.0, 100.0))
    assert first_z == pytest.approx((37.0, 100.0))


def test_weapon_range_is_edge_to_edge():
    a, t = UNITS["stalker"], UNITS["zealot"]
    reach = a.range + a.radius + t.radius  # 7.125 centre distance
    _, steps_in, _ = duel("stalker", "zealot", reach - 0.02, steps=5)
    trace_in, _, _ = duel("stalker", "zealot", reach - 0.02, steps=3)
    trace_out, _, _ = duel("stalker", "zealot", reach + 0.05, steps=30)
    assert trace_in[-1] != trace_in[0], "in range edge-to-edge: must fire"
    assert all(x == trace_out[0] for x in trace_out), "out of range: must not fire"
    assert reach - 0.02 > a.range + a.radius  # centre-to-centre rules would have said 'out of range'


def test_shields_regenerate_after_ten_seconds_without_damage():
    src = FixedSource(["stalker"], ["zealot"], [[10.0, 16.0]], [[16.0, 16.0]])
    env = SimEnv(load_map("2s3z"), 1, source=src, config=EXACT)
    env.reset()
    env.step(torch.tensor([[6]]))            # one volley at range
    for _ in range(2):
        env.step(torch.tensor([[5]]))          # walk west: out of range, no more damage
    hit = float(env.battle.shield[0, 1])
    assert hit < 50.0
    steps_10s = math.ceil(10 * GAME_LOOPS_PER_SECOND / 8)
    for _ in range(steps_10s - 4):
        env.step(torch.tensor([[1]]))
    assert float(env.battle.shield[0, 1]) == pytest.approx(hit)   # not yet
    for _ in range(10):
        env.step(torch.tensor([[1]]))
    assert float(env.battle.shield[0, 1]) > hit + 2.0              # 2 per second after the delay


def test_units_do_not_overlap_and_stay_in_arena():
    env = SimEnv.from_map("3s5z", n_envs=16, seed=3)
    env.reset()
    g = torch.Generator().manual_seed(0)
    overlaps = []
    for _ in range(60):
        av = env.get_avail_actions()
        a = torch.where(av, torch.rand(av.shape, generator=g), -1.0).argmax(-1)
        env.step(a)
        b = env.battle
        d = (b.pos[:, :, None] - b.pos[:, None]).norm(dim=-1)
        r = b.col("radius")
        reach = r[:, :, None] + r[:, None, :]
        both = b.alive[:, :, None] & b.alive[:, None, :] & ~torch.eye(b.U, dtype=torch.bool)
        overlaps.append(((reach - d) / reach)[both].clamp(min=0))
        assert (b.pos >= 0).all() and (b.pos[..., 0] <= 32).all() and (b.pos[..., 1] <= 32).all()
    ov = torch.cat(overlaps)
    # soft collisions: melee crowds overlap briefly and are pushed apart over the next ticks
    assert ov.max() < 0.4
    assert ov[ov > 0].mean() < 0.06


def test_move_covers_speed_times_step_time():
    src = FixedSource(["zealot"], ["zealot"], [[10.0, 16.0]], [[25.0, 16.0]])
    env = SimEnv(load_map("2s3z"), 1, source=src, config=EXACT)
    env.reset()
    x0 = float(env.battle.pos[0, 0, 0])
    env.step(torch.tensor([[4]]))  # east
    moved = float(env.battle.pos[0, 0, 0]) - x0
    assert moved == pytest.approx(3.15 * 8 / GAME_LOOPS_PER_SECOND, rel=1e-3)  # about 1.1 units
