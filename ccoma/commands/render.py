"""``ccoma render``: one simulated battle as PNG frames and an animated GIF."""
from __future__ import annotations

import click


def policy_from_checkpoint(path: str, env):
    """A greedy policy callable ``(obs [B, N, obs], avail [B, N, A]) -> actions [B, N]`` from a ccoma
    checkpoint or a policy directory (see ``ccoma.experiment.load_policy``)."""
    from pathlib import Path

    from ccoma.errors import CcomaError
    from ccoma.experiment import load_policy

    if not Path(path).exists():
        raise CcomaError(f"--checkpoint {path}: no such file or directory")
    return load_policy(path, env)


def build_env(map_name: str | None, scenario: str | None, phase: str | None, seed: int, backend: str = "sim"):
    """A one-environment env of ``backend`` for a map (its own spawns) or one phase of a scenario;
    returns (env, label)."""
    from ccoma.envs import check, make
    from ccoma.errors import CcomaError

    if map_name and scenario:
        raise CcomaError("render: give either --map or --scenario, not both")
    if phase and not scenario:
        raise CcomaError("render: --phase needs --scenario")
    check(backend)
    if not scenario:
        name = map_name or "2s3z"
        return make(backend, name, 1, seed), name
    from ccoma.scenarios import load_scenario

    scn = load_scenario(scenario)
    phase = phase or scn.phase_names[0]
    source = scn.phase_source(phase, seed=seed)
    return make(backend, scn.map, 1, seed, source=source), f"{scn.name}-{phase}"


@click.command()
@click.option("--map", "map_name", default=None, help="Map to fight on (default 2s3z), with its default spawns.")
@click.option("--scenario", "-s", default=None, help="Scenario (name or YAML path); the episode is drawn from one phase.")
@click.option("--phase", default=None, help="The scenario phase to draw from (default: its first phase).")
@click.option("--seed", type=click.IntRange(0, 2 ** 31 - 1), default=0, show_default=True,
              help="Seeds the episode and the random policy.")
@click.option("--steps", type=click.IntRange(1, 100_000), default=None,
              help="Stop after this many steps (default: the episode limit).")
@click.option("--output", "-o", type=click.Path(file_okay=False), default=None,
              help="Folder for the frames and the GIF (default: renders/<map or scenario-phase>-seed<S>).")
@click.option("--every", type=click.IntRange(1, 100_000), default=1, show_default=True, help="Draw every k-th step (the last always).")
@click.option("--gif/--no-gif", default=True, show_default=True, help="Also write battle.gif.")
@click.option("--fps", type=click.FloatRange(0, 100, min_open=True), default=6.0, show_default=True, help="GIF frames per second.")
@click.option("--sight/--no-sight", default=True, show_default=True, help="Draw the agents' sight circles.")
@click.option("--ranges/--no-ranges", default=True, show_default=True, help="Draw weapon ranges.")
@click.option("--crop/--no-crop", default=True, show_default=True, help="Zoom on the part of the arena in use.")
@click.option("--checkpoint", type=click.Path(), default=None,
              help="A trained policy checkpoint to drive the agents (default: random valid actions).")
@click.option("--backend", type=click.Choice(["sim", "sc2"]), default="sim", show_default=True,
              help="Fight in the built-in simulator or in StarCraft II (see `ccoma doctor`).")
def render(map_name, scenario, phase, seed, steps, output, every, gif, fps, sight, ranges, crop, checkpoint, backend):
    """Draw one battle (built-in simulator or StarCraft II) as PNG frames (and a GIF)."""
    from pathlib import Path

    from ccoma.errors import CcomaError
    from ccoma.sim.render import outcome, record_episode, render_frames, write_gif

    if fps != fps:  # NaN passes any range check
        raise CcomaError("render: --fps should be a number in (0, 100], got nan")
    from ccoma.commands.evaluate import check_folder

    env, label = build_env(map_name, scenario, phase, seed, backend)
    policy = policy_from_checkpoint(checkpoint, env) if checkpoint else None
    out = Path(output or Path("renders") / f"{label}-seed{seed}")
    check_folder(str(out), "--output")  # before the episode is played
    frames = record_episode(env, policy=policy, max_steps=steps, seed=seed, label=label)
    paths = render_frames(frames, out, every=every, sight=sight, ranges=ranges, crop=crop)
    click.echo(f"{label}: {len(frames) - 1} steps ({outcome(frames[-1])}), {len(paths)} frames -> {out}/frame_*.png")
    if gif:
        path = write_gif(frames, out / "battle.gif", fps=fps, every=every, sight=sight, ranges=ranges, crop=crop)
        click.echo(f"gif -> {path}")
