"""``ccoma scenarios list`` and ``ccoma scenarios show NAME [--output timeline.png]``."""
from __future__ import annotations

import click


def _steps(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _table(headers: list[str], rows: list[list[str]], indent: str = "  ") -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    lines = [indent + "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip() for r in [headers] + rows]
    lines.insert(1, indent + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _protocol(scn) -> str:
    unseen = "no unseen situations" if scn.unseen_from is None else f"unseen from deploy step {_steps(scn.unseen_from)}"
    return f"train {_steps(scn.train_steps)}, deploy {_steps(scn.deploy_steps)}, {unseen}"


@click.group()
def scenarios():
    """Scenario files: what the enemy looks like and where it spawns, as steps go by."""


@scenarios.command("list")
def list_cmd():
    """Every shipped scenario: name, map, protocol and description."""
    from ccoma.errors import CcomaError
    from ccoma.scenarios import list_scenarios, load_scenario

    rows = []
    for name in list_scenarios():
        try:
            scn = load_scenario(name)
        except CcomaError as exc:  # one broken file should not hide the others
            rows.append([name, "?", "invalid", str(exc)])
            continue
        rows.append([name, scn.map.name, _protocol(scn), scn.description])
    click.echo(_table(["name", "map", "protocol", "description"], rows, indent=""))


@scenarios.command("show")
@click.argument("name")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write a timeline picture (PNG) of the enemy composition and spawn sites over steps.")
@click.option("--train-steps", type=click.IntRange(1, 10 ** 12), default=None,
              help="Show the schedule rescaled to this many train steps.")
@click.option("--deploy-steps", type=click.IntRange(1, 10 ** 12), default=None,
              help="Show the schedule rescaled to this many deploy steps.")
def show_cmd(name, output, train_steps, deploy_steps):
    """The phases of scenario NAME (or a path to a scenario YAML) per stage, and optionally a timeline PNG."""
    from ccoma.scenarios import load_scenario

    scn = load_scenario(name)
    if output:  # before anything is printed
        from pathlib import Path

        from ccoma.commands.evaluate import check_folder

        check_folder(str(Path(output).parent), "--output")
    if train_steps or deploy_steps:
        scn = scn.rescaled(train_steps, deploy_steps)
    click.echo(f"{scn.name}  (map {scn.map.name}; {scn.path})")
    click.echo(scn.description)
    click.echo(f"protocol: {_protocol(scn)}")
    click.echo(f"teams: {scn.n_agents} agents vs {scn.n_enemies} enemies; unit types {', '.join(scn.unit_types)}")
    click.echo("\nphases")
    for pname in scn.phase_names:
        d = scn.describe_phase(pname)
        tag = "produces unseen situations" if d["unseen"] == "yes" else "seen in training"
        click.echo(f"  {pname} ({tag}){': ' + d['description'] if d['description'] else ''}")
        for key in ("agents", "enemies", "start"):
            click.echo(f"      {key + ':':9s}{d[key]}")
    for stage in ("train", "deploy"):
        rows = []
        for seg in scn.segments(stage):
            mix = ", ".join(f"{n} {a:.2g}" + (f"->{b:.2g}" if a != b else "")
                            for n, a, b in zip(scn.phase_names, seg.w_start, seg.w_end) if a > 0 or b > 0)
            rows.append([_steps(seg.start), _steps(seg.end), seg.kind, seg.label, mix])
        click.echo(f"\n{stage} stage ({_steps(scn.stage_steps(stage))} steps)")
        click.echo(_table(["from", "until", "rule", "label", "phase shares"], rows))
    if output:
        from analysis.timeline import plot_timeline

        path = plot_timeline([scn.timeline("train"), scn.timeline("deploy")], output,
                             title=f"scenario {scn.name} (map {scn.map.name})", subtitle=scn.description)
        click.echo(f"\ntimeline written to {path}")
