"""Battle pictures: recording, PNG frames, GIF, and ``ccoma render``."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ccoma.cli import cli
from ccoma.sim.env import SimEnv
from ccoma.sim.render import outcome, record_episode, render_frames, type_letters, write_gif

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def frames():
    env = SimEnv.from_map("3m", n_envs=2, seed=5)
    return record_episode(env, env_index=1, max_steps=6, seed=1)


def test_record_episode_steps_and_state(frames):
    assert [f.step for f in frames] == list(range(len(frames)))
    assert 2 <= len(frames) <= 7
    w, h = frames[0].arena
    for f in frames:
        assert f.pos.shape == (6, 2) and f.alive.shape == (6,) and f.n_agents == 3
        assert (f.pos[f.alive] >= 0).all() and (f.pos[f.alive, 0] <= w).all() and (f.pos[f.alive, 1] <= h).all()
        assert ((f.shot_at >= -1) & (f.shot_at < 6)).all()
        assert (f.hp <= f.max_hp + 1e-4).all()
    assert np.array_equal(frames[1].prev_pos, frames[0].pos)
    assert frames[0].unit_types == ("marine",) and not frames[0].done
    # something happened: units moved (random actions include moves)
    assert np.abs(frames[-1].pos - frames[0].pos).max() > 0.1


def test_record_is_seeded_and_uses_the_policy():
    def rec(seed):  # a fresh env each time: every reset starts a new (differently jittered) episode
        return record_episode(SimEnv.from_map("3m", n_envs=1, seed=2), max_steps=5, seed=seed)

    a, b, c = rec(3), rec(3), rec(4)
    assert all(np.array_equal(x.pos, y.pos) for x, y in zip(a, b))
    assert any(not np.allclose(x.pos, y.pos) for x, y in zip(a, c))

    calls = []

    def stop_policy(obs, avail):  # obs [B, N, obs_dim], avail [B, N, A]
        calls.append((tuple(obs.shape), tuple(avail.shape)))
        return torch.ones(avail.shape[:2], dtype=torch.long)  # action 1: stop

    env = SimEnv.from_map("3m", n_envs=1, seed=2)
    held = record_episode(env, policy=stop_policy, max_steps=4)
    assert len(calls) == len(held) - 1 == 4
    assert calls[0] == ((1, 3, env.obs_dim), (1, 3, env.n_actions))
    assert np.allclose(held[-1].pos[:3], held[0].pos[:3], atol=1e-3)  # agents held position


def test_record_runs_to_the_end_of_a_battle():
    env = SimEnv.from_map("3m", n_envs=1, seed=0)
    frames = record_episode(env, seed=0)
    last = frames[-1]
    assert last.done and outcome(last) in ("won", "lost", "draw", "time limit")
    assert all(not f.done for f in frames[:-1])
    assert len(frames) - 1 <= env.episode_limit


def test_render_frames_writes_readable_pngs(frames, tmp_path):
    from PIL import Image

    paths = render_frames(frames, tmp_path / "out", every=4)
    steps = list(range(0, len(frames), 4))
    if steps[-1] != len(frames) - 1:
        steps.append(len(frames) - 1)
    assert [p.name for p in paths] == [f"frame_{s:04d}.png" for s in steps]
    sizes = set()
    for p in paths:
        assert p.read_bytes()[:8] == PNG_MAGIC
        with Image.open(p) as im:
            sizes.add(im.size)
            px = np.asarray(im.convert("RGB"))
        assert px.std() > 10  # not a blank canvas
        # both sides drawn: some strongly blue and some strongly red pixels
        r, g, b = (px[..., i].astype(int) for i in range(3))
        assert ((b - r) > 80).sum() > 50 and ((r - b) > 80).sum() > 50
    assert len(sizes) == 1
    w, h = sizes.pop()
    assert 400 <= w <= 2000 and 400 <= h <= 2000


def test_write_gif_has_one_image_per_drawn_frame(frames, tmp_path):
    from PIL import Image

    path = write_gif(frames, tmp_path / "b.gif", every=2, fps=5, dpi=40)
    with Image.open(path) as im:
        assert im.format == "GIF"
        assert im.n_frames == len(range(0, len(frames), 2)) + (1 if (len(frames) - 1) % 2 else 0)


def test_type_letters_are_unique():
    letters = type_letters(["marine", "marauder", "zealot", "zergling", "stalker"])
    assert letters["marine"] == "M" and letters["zealot"] == "Z" and letters["stalker"] == "S"
    assert len(set(letters.values())) == 5


def test_bad_arguments_raise():
    env = SimEnv.from_map("3m", n_envs=1)
    with pytest.raises(IndexError):
        record_episode(env, env_index=1)
    with pytest.raises(ValueError):
        render_frames([], "unused")


def test_cli_render_writes_frames_and_gif(tmp_path):
    from PIL import Image

    out = tmp_path / "r"
    res = CliRunner().invoke(cli, ["render", "--map", "3m", "--steps", "3", "--seed", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    pngs = sorted(out.glob("frame_*.png"))
    assert [p.name for p in pngs] == [f"frame_{s:04d}.png" for s in range(len(pngs))] and len(pngs) >= 2
    with Image.open(out / "battle.gif") as im:
        assert im.n_frames == len(pngs)
    assert "3m" in res.output


def test_cli_render_scenario_phase(tmp_path):
    out = tmp_path / "s"
    res = CliRunner().invoke(cli, ["render", "--scenario", "shifting_spawn", "--phase", "new_sites", "--steps", "2",
                                   "--no-gif", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert len(list(out.glob("frame_*.png"))) == 3 and not (out / "battle.gif").exists()


@pytest.mark.parametrize("args, needle", [
    (["--map", "nosuchmap"], "no such map"),
    (["--map", "3m", "--scenario", "shifting_spawn"], "either --map or --scenario"),
    (["--scenario", "shifting_spawn", "--phase", "nosuchphase"], "unknown phase"),
    (["--map", "3m", "--every", "0"], "--every"),
])
def test_cli_render_bad_input_is_one_line(tmp_path, args, needle):
    res = CliRunner().invoke(cli, ["render", *args, "-o", str(tmp_path / "x")])
    assert res.exit_code == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in res.output
    assert not (tmp_path / "x").exists()


def test_frames_show_terrain_flyers_and_heals(tmp_path):
    frames = record_episode(SimEnv.from_map("MMM", n_envs=1, seed=3), max_steps=40, seed=1)
    f0 = frames[0]
    assert f0.terrain is not None and f0.terrain.any() and not f0.terrain.all()
    assert int(f0.air.sum()) == 2  # one medivac a side
    healers = {int(u) for f in frames for u in np.flatnonzero(f.heal_at >= 0)}
    assert healers and all(f0.air[u] for u in healers)
    paths = render_frames(frames[-1:], tmp_path)
    assert paths[0].read_bytes()[:8] == PNG_MAGIC


def test_each_living_unit_carries_its_white_type_letter(frames):
    """The type letters (drawn as outlines in one collection) sit on their units, and every frame
    draws only its own: the same count of artists after many frames."""
    from ccoma.sim.render import _Painter

    f = frames[len(frames) // 2]
    painter = _Painter(f.unit_types, f.arena, dpi=90)
    painter.fit(frames)
    painter.draw(frames[0])
    n_artists = len(painter.ax.get_children())
    painter.draw(f)
    assert len(painter.ax.get_children()) == n_artists
    px = painter.rgba()[..., :3].astype(int)
    h = px.shape[0]
    for u in np.flatnonzero(f.alive):
        x, y = painter.ax.transData.transform(f.pos[u])
        row, col = int(round(h - y)), int(round(x))
        window = px[max(row - 4, 0):row + 5, max(col - 4, 0):col + 5]
        assert (window.min(-1) > 225).sum() >= 3, f"no white letter on unit {u}"
    painter.close()
