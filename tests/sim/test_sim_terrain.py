"""Impassable terrain: ground units stop at walls and lose the move action into them; cliff walkers
(colossus) cross; bad terrain blocks are one-line errors; shipped SMAC layouts keep their walls."""
import pytest
import torch
import yaml

from ccoma.errors import ConfigError
from ccoma.sim.engine import SimConfig
from ccoma.sim.env import SimEnv
from ccoma.sim.maps import load_map

WALL_X = 16  # the cells x in [16, 17) are impassable except for a gap at y in [28, 32)


def wall_map(tmp_path, **extra):
    rows = ["." * 32 if y >= 28 else "." * WALL_X + "#" + "." * 15 for y in range(31, -1, -1)]
    data = {"name": "wall", "size": [32, 32], "episode_limit": 50,
            "spawn_sites": {"west": {"center": [13.0, 12.0], "spread": 1.0},
                            "east": {"center": [27.0, 12.0], "spread": 1.0}},
            "agents": {"units": ["zealot", "colossus"], "spawn": "west"},
            "enemies": {"units": ["zealot"], "spawn": "east"}, "terrain": {"rows": rows}}
    data.update(extra)
    p = tmp_path / "wall.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_ground_units_stop_at_a_wall_and_colossi_cross_it(tmp_path):
    env = SimEnv(load_map(wall_map(tmp_path)), 1, config=SimConfig(opponent="passive", cooldown_jitter=False))
    env.reset()
    for _ in range(8):
        avail = env.get_avail_actions()[0]
        # the zealot walks east while SMAC allows it; the colossus is ordered east regardless (SMAC's
        # move bits follow the ground pathing grid for every unit, so a colossus crosses a cliff when
        # its orders take it there: the engine obeys an order the observation would not offer)
        acts = [4 if bool(avail[0, 4]) else 1, 4]
        env.step(torch.tensor([acts]), auto_reset=False)
    x = env.battle.pos[0, :2, 0]
    assert float(x[0]) < WALL_X          # the zealot never enters the wall's cells
    assert float(x[1]) > WALL_X + 1      # the colossus walks over it
    # next to the wall, SMAC's pathing check switches "move east" off for the zealot
    env.battle.pos[0, 0] = torch.tensor([15.5, 12.0])
    env._observe_all()
    assert not bool(env.get_avail_actions()[0, 0, 4])


@pytest.mark.parametrize("extra,msg", [
    ({"terrain": {"rows": ["..", ".#", "."]}}, "equally long"),
    ({"terrain": {"rows": ["..", ".x"]}}, "unknown cell 'x'"),
    ({"terrain": {"cells": []}}, "only 'rows'"),
    ({"spawn_sites": {"west": {"center": [16.5, 12.0], "spread": 0.5},
                      "east": {"center": [27.0, 12.0], "spread": 1.0}}}, "impassable terrain"),
])
def test_bad_terrain_is_a_one_line_error(tmp_path, extra, msg):
    with pytest.raises(ConfigError) as err:
        load_map(wall_map(tmp_path, **extra))
    assert msg in str(err.value) and "\n" not in str(err.value)


def test_corridor_keeps_its_corridor():
    m = load_map("corridor")
    grid = m.terrain_grid()
    # the two rooms meet only through the 2-cell gap at x, y in [12, 14)
    assert bool(grid[12:14, 12:14].all())
    assert not bool(grid[12:14, 14:20].any()) and not bool(grid[14:16, 8:14].any())
    env = SimEnv(m, 1)
    env.reset()
    pos = env.battle.pos[0]
    assert bool(torch.stack([grid[int(y), int(x)] for x, y in pos.tolist()]).all())  # everyone starts on open ground


def test_ground_units_walk_round_a_wall_to_reach_their_goal(tmp_path):
    # the zergling attack-moves to the agents' spawn behind the wall: the only way is the gap at y >= 28
    path = wall_map(tmp_path, agents={"units": ["zealot"], "spawn": "west"},
                    enemies={"units": ["zergling"], "spawn": "east"})
    env = SimEnv(load_map(path), 1, config=SimConfig(opponent="sticky", cooldown_jitter=False))
    assert env.mech.paths is not None  # the wall is worth a detour
    env.reset()
    ys, crossed = [], False
    for _ in range(40):
        env.step(torch.tensor([[1]]), auto_reset=False)
        x, y = env.battle.pos[0, 1].tolist()
        ys.append(y)
        crossed = crossed or x < WALL_X - 0.5
    assert max(ys) > 27.5 and crossed  # up through the gap, then down the other side


def test_open_and_convex_arenas_need_no_paths():
    for name in ("8m", "2m_vs_1z", "6h_vs_8z", "corridor"):
        assert SimEnv(load_map(name), 1).mech.paths is None
    assert SimEnv(load_map("2c_vs_64zg"), 1).mech.paths is not None
