"""Pictures of simulated battles: record one episode of a :class:`~ccoma.sim.env.SimEnv`, draw it.

    env = SimEnv.from_map("2s3z", n_envs=1)
    frames = record_episode(env)                          # random valid actions; or policy=callable
    render_frames(frames, "out/", env.unit_types, env.arena, every=2)   # out/frame_0000.png ...
    write_gif(frames, "out/battle.gif", fps=6)

A frame shows every unit as a circle of its radius (agents blue, enemies red) with a type letter,
a health bar (green) and a shield bar (cyan) above it, the agents' sight circles (dotted) and
weapon ranges (dashed, edge to edge: range + own radius), this step's attacks as arrows from
shooter to target, this step's movement as green arrows, and a title with the step, the alive
counts and the backend, as in the C-COMA paper's figures 6 and 7. Dead units stay as grey crosses.
Maps with terrain show impassable cells as dark squares; flying units (medivac) have a dashed
outline; heals are green dashed lines from healer to patient.

matplotlib and Pillow are imported lazily: importing this module costs nothing.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

BACKEND_LABEL = "ccoma-sim (not StarCraft II)"
SIDE_COLOURS = ("#1f5fbf", "#c62828")   # agents, enemies
ATTACK_COLOURS = ("#0d47a1", "#b71c1c")
MOVE_COLOUR = "#2e7d32"

Policy = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # obs [B, N, obs], avail [B, N, A] -> actions [B, N]


@dataclasses.dataclass(frozen=True, eq=False)
class Frame:
    """One environment's battle after ``step`` agent steps (step 0: the start). Arrays are ``[U]`` or ``[U, 2]``
    with U = agents then enemies."""

    step: int
    n_agents: int
    pos: np.ndarray          # [U, 2] float32
    prev_pos: np.ndarray     # [U, 2] positions one step earlier (movement arrows)
    types: np.ndarray        # [U] int, index into unit_types
    hp: np.ndarray           # [U]
    shield: np.ndarray       # [U]
    max_hp: np.ndarray       # [U]
    max_shield: np.ndarray   # [U]
    radius: np.ndarray       # [U]
    weapon_range: np.ndarray  # [U] edge-to-edge weapon range
    alive: np.ndarray        # [U] bool
    shot_at: np.ndarray      # [U] int, unit fired at during this step or -1
    sight: float             # agents' observation range
    unit_types: tuple[str, ...]
    arena: tuple[float, float]
    label: str = ""          # map / scenario name shown in the title
    reward: float = 0.0
    episode_return: float = 0.0
    done: bool = False
    won: bool = False
    terrain: np.ndarray | None = None   # [H, W] bool, True where ground units may stand (None: open arena)
    heal_at: np.ndarray | None = None   # [U] int, unit healed during this step or -1
    air: np.ndarray | None = None       # [U] bool, flying units
    backend: str = BACKEND_LABEL  # which backend fought the battle (the env's ``render_label``)


def _random_policy(seed: int) -> Policy:
    g = torch.Generator().manual_seed(seed)

    def act(obs: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
        # uniform over each agent's available actions, vectorised
        u = torch.rand(avail.shape, generator=g).to(avail.device)
        return torch.where(avail, u, torch.full_like(u, -1.0)).argmax(-1)

    return act


def _snapshot(env, i: int, step: int, prev_pos: np.ndarray | None, label: str, **extra) -> Frame:
    from ccoma.sim.units import COL

    b = env.battle
    st = b.stats[i].detach().cpu()
    pos = b.pos[i].detach().cpu().numpy().copy()
    return Frame(step=step, n_agents=b.N, pos=pos, prev_pos=pos if prev_pos is None else prev_pos,
                 types=b.types[i].cpu().numpy().copy(), hp=b.hp[i].cpu().numpy().copy(),
                 shield=b.shield[i].cpu().numpy().copy(), max_hp=st[:, COL["hp"]].numpy(),
                 max_shield=st[:, COL["shield"]].numpy(), radius=st[:, COL["radius"]].numpy(),
                 weapon_range=st[:, COL["range"]].numpy(), alive=b.alive[i].cpu().numpy().copy(),
                 shot_at=b.shot_at[i].cpu().numpy().copy(), sight=float(env.cfg.sight_range),
                 unit_types=tuple(env.unit_types), arena=tuple(float(x) for x in env.arena),
                 label=label, terrain=None if env.mech.terrain is None else env.mech.terrain.cpu().numpy(),
                 heal_at=b.heal_at[i].cpu().numpy().copy(), air=st[:, COL["air"]].numpy() > 0,
                 backend=getattr(env, "render_label", BACKEND_LABEL), **extra)


@torch.no_grad()
def record_episode(env, policy: Policy | None = None, env_index: int = 0, max_steps: int | None = None,
                   seed: int = 0, label: str | None = None) -> list[Frame]:
    """Reset ``env`` and play one episode of environment ``env_index``; one :class:`Frame` per step.

    ``policy(obs [B, N, obs_dim], avail [B, N, A] bool) -> actions [B, N]``; by default uniformly
    random available actions (seeded by ``seed``). Recording stops when that environment's episode
    ends or after ``max_steps`` (default: the episode limit). Steps run without automatic reset so
    the last frame shows the end of the battle; afterwards call ``env.reset()`` before reusing ``env``.
    ``label`` (default: the map name) heads every frame's title.
    """
    if not 0 <= env_index < env.n_envs:
        raise IndexError(f"env_index {env_index} out of range for {env.n_envs} environments")
    policy = policy or _random_policy(seed)
    max_steps = env.episode_limit if max_steps is None else int(max_steps)
    label = getattr(env.map, "name", "") if label is None else label
    env.reset()
    frames = [_snapshot(env, env_index, 0, None, label)]
    ret = 0.0
    for t in range(1, max_steps + 1):
        actions = policy(env.get_obs(), env.get_avail_actions())
        out = env.step(torch.as_tensor(actions).to(env.device, torch.long), auto_reset=False)
        r = float(out.reward[env_index])
        ret += r
        done = bool(out.terminated[env_index] or out.truncated[env_index])
        frames.append(_snapshot(env, env_index, t, frames[-1].pos, label, reward=r, episode_return=ret, done=done,
                                won=bool(out.won[env_index])))
        if done:
            break
    return frames


def outcome(f: Frame) -> str:
    """How the recorded episode stands at frame ``f``: won, lost, draw, time limit or running."""
    if not f.done:
        return "running"
    a_alive, e_alive = f.alive[:f.n_agents].any(), f.alive[f.n_agents:].any()
    return "won" if f.won else "draw" if not (a_alive or e_alive) else "lost" if not a_alive else "time limit"


def type_letters(unit_types: Sequence[str]) -> dict[str, str]:
    """A short unique label per type: its initial, or initial + a later letter on a clash (marine M, marauder Ma)."""
    out: dict[str, str] = {}
    for name in unit_types:
        cands = [name[:1].upper()] + [name[:1].upper() + c for c in name[1:]]
        out[name] = next((c for c in cands if c not in out.values()), name)
    return out


class _Painter:
    """Draws frames onto one reused matplotlib figure (Agg canvas).

    What is the same in every frame (axes, grid, ticks, terrain, legend) is drawn once and kept as a
    pixel buffer; each frame restores it and draws only its own artists (units, bars, shots, moves,
    title) onto it, then removes them: ~5x less drawing per frame than redrawing the whole figure."""

    def __init__(self, unit_types, arena, sight=True, ranges=True, dpi=90, size=7.0):
        # Figure + Agg canvas directly, not pyplot: no global state, no GUI backend switching
        from matplotlib.figure import Figure
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        self.unit_types, self.arena = tuple(unit_types), tuple(float(x) for x in arena)
        self.letters = type_letters(self.unit_types)
        self.sight, self.ranges = sight, ranges
        # a fixed layout (no tight bbox) so every frame has the same pixel size
        self.fig = Figure(figsize=(size, size * 1.08), dpi=dpi)
        self.canvas = FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_axes([0.07, 0.13, 0.9, 0.8])
        self.view = (0.0, self.arena[0], 0.0, self.arena[1])
        self._bg, self._bg_key = None, None
        self._glyphs: dict = {}   # type letter -> its outline at font size 1, centred on the origin
        self._legend()

    def fit(self, frames: Sequence[Frame], margin: float = 3.0, min_size: float = 14.0) -> None:
        """Fix the camera on the square that holds every unit of ``frames`` (plus a margin), inside the arena."""
        pts = np.concatenate([f.pos for f in frames])
        lo, hi = pts.min(0) - margin, pts.max(0) + margin
        size = min(max(float((hi - lo).max()), min_size), max(self.arena))
        mid = (lo + hi) / 2
        x0 = float(np.clip(mid[0] - size / 2, 0.0, max(self.arena[0] - size, 0.0)))
        y0 = float(np.clip(mid[1] - size / 2, 0.0, max(self.arena[1] - size, 0.0)))
        self.view = (x0, x0 + size, y0, y0 + size)

    def _legend(self):
        # a figure legend survives ax.clear(), so it is built once
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], marker="o", ls="", mfc=SIDE_COLOURS[0], mec="black", label="agent"),
                   Line2D([], [], marker="o", ls="", mfc=SIDE_COLOURS[1], mec="black", label="enemy")]
        handles += [Line2D([], [], marker=f"${self.letters[n]}$", ls="", color="black", label=n)
                    for n in self.unit_types]
        handles += [Line2D([], [], color=ATTACK_COLOURS[0], label="agent attack"),
                    Line2D([], [], color=ATTACK_COLOURS[1], label="enemy attack"),
                    Line2D([], [], color=MOVE_COLOUR, label="move"),
                    Line2D([], [], marker="x", ls="", color="#8a8a8a", label="dead"),
                    Line2D([], [], color="#43a047", lw=3, label="health"),
                    Line2D([], [], color="#00acc1", lw=3, label="shield")]
        if self.sight:
            handles.append(Line2D([], [], color=SIDE_COLOURS[0], ls=":", label="agent sight"))
        if self.ranges:
            handles.append(Line2D([], [], color="grey", ls="--", label="weapon range"))
        self.fig.legend(handles=handles, loc="lower center", ncol=6, fontsize=7, frameon=False)

    def _background(self, f: Frame) -> None:
        """Draw (once per camera and terrain) everything that does not change between frames."""
        terrain = None if f.terrain is None else (f.terrain.shape, f.terrain.tobytes(), tuple(f.arena))
        key = (self.view, terrain)
        if self._bg is not None and key == self._bg_key:
            return
        ax = self.ax
        ax.clear()
        x0, x1, y0, y1 = self.view
        ax.set_xlim(x0, x1), ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        ax.set_facecolor("#f4f1ea")
        ax.grid(True, color="white", linewidth=0.8)
        ax.tick_params(labelsize=7)
        if f.terrain is not None:  # impassable cells, drawn under everything
            ax.imshow(~f.terrain, origin="lower", extent=(0, f.arena[0], 0, f.arena[1]), cmap="Greys",
                      vmin=0, vmax=1.6, alpha=0.8, zorder=0, interpolation="nearest")
        ax.set_title("", fontsize=9)
        self.canvas.draw()
        self._bg, self._bg_key = self.canvas.copy_from_bbox(self.fig.bbox), key

    def draw(self, f: Frame):
        """Draw frame ``f`` onto the canvas (read it with :meth:`rgb` / :meth:`rgba`)."""
        from matplotlib.collections import PatchCollection, PathCollection
        from matplotlib.patches import Circle, Rectangle
        from matplotlib.transforms import Affine2D

        self._background(f)
        ax = self.ax
        before = {id(a) for a in ax.get_children()}
        x0, x1, _, _ = self.view
        side = (np.arange(len(f.pos)) >= f.n_agents).astype(int)
        pts_per_unit = self.fig.get_figwidth() * 72 * 0.9 / (x1 - x0)  # type letters scale with the zoom
        rings, bodies, bars, letters = [], [], ([], []), []  # patches batched into one collection per layer
        for u in np.flatnonzero(f.alive):
            x, y = f.pos[u]
            r, s = f.radius[u], side[u]
            if self.sight and s == 0:
                rings.append(Circle((x, y), f.sight, fill=False, ls=":", lw=0.7, ec=SIDE_COLOURS[0], alpha=0.35))
            if self.ranges:
                rings.append(Circle((x, y), f.weapon_range[u] + r, fill=False, ls="--", lw=0.6,
                                    ec=SIDE_COLOURS[s], alpha=0.45))
            flying = f.air is not None and bool(f.air[u])
            bodies.append(Circle((x, y), r, fc=SIDE_COLOURS[s], ec="black", lw=1.0 if flying else 0.6,
                                 ls="--" if flying else "-", alpha=0.9))
            letter = self.letters.get(self.unit_types[f.types[u]], "?")
            size = float(np.clip(r * pts_per_unit, 5, 13)) / pts_per_unit   # the letter's font size, in data units
            letters.append(self._glyph(letter).transformed(Affine2D().scale(size).translate(x, y)))
            self._bars(bars, Rectangle, f, u)
        for patches, z in ((rings, 1), (bodies, 3), (bars[0], 5), (bars[1], 6)):
            if patches:  # autolim off: the camera is fixed, and limits cost more than the drawing
                ax.add_collection(PatchCollection(patches, match_original=True, zorder=z), autolim=False)
        if letters:  # type letters as outlines in one collection: laying out text costs ~1.5 ms a letter
            ax.add_collection(PathCollection(letters, facecolors="white", edgecolors="none", zorder=4,
                                             transform=ax.transData), autolim=False)
        dead = ~f.alive
        if dead.any():
            ax.scatter(f.pos[dead, 0], f.pos[dead, 1], marker="x", s=22, c="#8a8a8a", lw=1.0, zorder=2)
        self._arrows(ax, f)
        a_alive, e_alive = int(f.alive[:f.n_agents].sum()), int(f.alive[f.n_agents:].sum())
        end = f" - {outcome(f)}" if f.done else ""
        ax.title.set_text(f"{f.label}  step {f.step}  agents alive {a_alive}/{f.n_agents}  enemies alive "
                          f"{e_alive}/{len(f.pos) - f.n_agents}{end}\n{f.backend}   return {f.episode_return:.2f}")
        # this frame's artists over the kept background, in z-order (as a full draw would order them)
        mine = [a for a in ax.get_children() if id(a) not in before]
        self.canvas.restore_region(self._bg)
        for artist in sorted(mine, key=lambda a: a.get_zorder()):
            ax.draw_artist(artist)
        ax.draw_artist(ax.title)
        for artist in mine:
            artist.remove()
        return self.fig

    def _glyph(self, letter: str):
        """``letter`` in bold as a filled outline at font size 1, centred on (0, 0): scaled by a font size
        it is the glyph ``ax.text(..., ha="center", va="center", weight="bold")`` drew, without its layout."""
        glyph = self._glyphs.get(letter)
        if glyph is None:
            from matplotlib.font_manager import FontProperties
            from matplotlib.textpath import TextPath
            from matplotlib.transforms import Affine2D

            path = TextPath((0, 0), letter, size=1.0, prop=FontProperties(weight="bold"))
            box = path.get_extents()
            glyph = self._glyphs[letter] = path.transformed(
                Affine2D().translate(-(box.x0 + box.x1) / 2, -(box.y0 + box.y1) / 2))
        return glyph

    @staticmethod
    def _bars(out, Rectangle, f: Frame, u: int):
        """Health (and shield) bars over unit ``u``: backgrounds into ``out[0]``, fills into ``out[1]``."""
        x, y = f.pos[u]
        r = f.radius[u]
        bw, bh = max(2 * r, 1.0), 0.22
        left, y0 = x - bw / 2, y + r + 0.15
        rows = [(f.hp[u] / max(f.max_hp[u], 1e-6), "#43a047")]
        if f.max_shield[u] > 0:
            rows.append((f.shield[u] / f.max_shield[u], "#00acc1"))
        for k, (frac, colour) in enumerate(rows):
            yy = y0 + k * (bh + 0.05)
            out[0].append(Rectangle((left, yy), bw, bh, fc="#d0d0d0", ec="none"))
            out[1].append(Rectangle((left, yy), bw * float(np.clip(frac, 0, 1)), bh, fc=colour, ec="none"))

    @staticmethod
    def _arrows(ax, f: Frame):
        for u in np.flatnonzero(f.shot_at >= 0):
            t = int(f.shot_at[u])
            s = int(u >= f.n_agents)
            ax.annotate("", xy=tuple(f.pos[t]), xytext=tuple(f.pos[u]), zorder=7,
                        arrowprops=dict(arrowstyle="-|>", color=ATTACK_COLOURS[s], lw=1.4, alpha=0.9,
                                        shrinkA=3, shrinkB=4, mutation_scale=8))
        heals = np.flatnonzero(f.heal_at >= 0) if f.heal_at is not None else []
        for u in heals:
            (x0, y0), (x1, y1) = f.pos[u], f.pos[int(f.heal_at[u])]
            ax.plot([x0, x1], [y0, y1], ls="--", lw=1.6, color="#43a047", zorder=7)
        d = f.pos - f.prev_pos
        moved = f.alive & (np.linalg.norm(d, axis=-1) > 0.05)
        if moved.any():
            p, v = f.prev_pos[moved], d[moved]
            ax.quiver(p[:, 0], p[:, 1], v[:, 0], v[:, 1], angles="xy", scale_units="xy", scale=1,
                      color=MOVE_COLOUR, width=0.004, alpha=0.8, zorder=2)

    def rgb(self) -> np.ndarray:  # [H, W, 3] uint8
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()

    def rgba(self) -> np.ndarray:  # [H, W, 4] uint8
        return np.asarray(self.canvas.buffer_rgba()).copy()

    def close(self):
        self.fig.clear()


def _pick(frames: Sequence[Frame], every: int) -> list[Frame]:
    if not frames:
        raise ValueError("no frames to draw")
    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    picked = list(frames[::every])
    if picked[-1] is not frames[-1]:
        picked.append(frames[-1])  # always show how the battle ended
    return picked


def render_frames(frames: Sequence[Frame], out_dir: str | Path, unit_types: Sequence[str] | None = None,
                  arena: tuple[float, float] | None = None, every: int = 1, sight: bool = True,
                  ranges: bool = True, dpi: int = 90, crop: bool = True) -> list[Path]:
    """Write ``frame_<step>.png`` for every ``every``-th frame (and the last) into ``out_dir``.

    ``crop``: zoom on the part of the arena the battle uses (the same view in every frame)."""
    from PIL import Image

    picked = _pick(frames, every)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    painter = _Painter(unit_types or picked[0].unit_types, arena or picked[0].arena, sight, ranges, dpi)
    if crop:
        painter.fit(frames)
    paths = []
    for f in picked:
        p = out / f"frame_{f.step:04d}.png"
        painter.draw(f)
        Image.fromarray(painter.rgba(), "RGBA").save(p)  # the canvas as drawn (savefig would redraw it)
        paths.append(p)
    painter.close()
    return paths


def write_gif(frames: Sequence[Frame], path: str | Path, fps: float = 6, unit_types: Sequence[str] | None = None,
              arena: tuple[float, float] | None = None, every: int = 1, sight: bool = True, ranges: bool = True,
              dpi: int = 70, hold_last: float = 1.5, crop: bool = True) -> Path:
    """Write an animated GIF of the frames (every ``every``-th and the last, held ``hold_last`` seconds)."""
    from PIL import Image

    picked = _pick(frames, every)
    painter = _Painter(unit_types or picked[0].unit_types, arena or picked[0].arena, sight, ranges, dpi)
    if crop:
        painter.fit(frames)
    images = []
    for f in picked:
        painter.draw(f)
        images.append(Image.fromarray(painter.rgb()).quantize(colors=64, method=Image.Quantize.FASTOCTREE))
    painter.close()
    ms = int(round(1000 / fps))
    durations = [ms] * (len(images) - 1) + [max(ms, int(hold_last * 1000))]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0, optimize=False)
    return path
