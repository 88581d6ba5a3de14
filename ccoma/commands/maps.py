"""``ccoma maps``: list the shipped maps and validate a map file."""
from __future__ import annotations

import click


@click.group()
def maps():
    """Map files (arena, spawn sites, rosters) of the built-in simulator."""


@maps.command("list")
def list_maps():
    """List the shipped maps with their sizes and rosters."""
    from ccoma.sim.maps import load_map
    from ccoma.sim.units import MAPS_DIR

    for path in sorted(MAPS_DIR.glob("*.yaml")):
        if path.stem == "units":
            continue
        m = load_map(path)
        click.echo(f"{m.name:16s} {m.size[0]:g}x{m.size[1]:g}  limit {m.episode_limit:4d}  "
                   f"agents {len(m.agents)}  enemies {len(m.enemies)}  sites: {', '.join(m.sites)}")


@maps.command("check")
@click.argument("map_file")
@click.option("--units", "units_file", default=None, help="Unit stats file to validate as well.")
def check(map_file, units_file):
    """Validate MAP_FILE (a name or a path) and print the SMAC sizes it produces."""
    from ccoma.sim.env import SimEnv
    from ccoma.sim.maps import load_map
    from ccoma.sim.units import load_units

    if units_file:
        load_units(units_file)
    m = load_map(map_file)
    info = SimEnv(m, 1).get_env_info()
    click.echo(f"{m.name}: ok - obs {info['obs_shape']}, state {info['state_shape']}, "
               f"actions {info['n_actions']}, agents {info['n_agents']}, episode limit {info['episode_limit']}")
