"""Bad map or unit data: one clear error naming the file and the field; no traceback from the CLI."""
import subprocess
import sys
import textwrap

import pytest
import yaml
from click.testing import CliRunner

from ccoma.cli import cli
from ccoma.errors import ConfigError
from ccoma.sim.maps import load_map
from ccoma.sim.units import DEFAULT_UNITS_FILE, load_units

GOOD = yaml.safe_load((DEFAULT_UNITS_FILE.parent / "2s3z.yaml").read_text())


def write_map(tmp_path, mutate):
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    mutate(data)
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize("mutate,field", [
    (lambda d: d.pop("episode_limit"), "episode_limit"),
    (lambda d: d["enemies"].update(units=["stalker", "ultralisk"]), "ultralisk"),
    (lambda d: d["spawn_sites"]["east"].update(center=[40.0, 16.0]), "spawn_sites.east.center"),
    (lambda d: d.update(episode_limit=-5), "episode_limit"),
    (lambda d: d["agents"].update(spawn="nowhere"), "agents.spawn"),
    (lambda d: d.update(size=[32]), "size"),
    (lambda d: d.update(colour="red"), "colour"),
])
def test_bad_map_names_file_and_field(tmp_path, mutate, field):
    path = write_map(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_map(path)
    msg = str(err.value)
    assert str(path) in msg and field in msg and "\n" not in msg


def test_malformed_yaml(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("name: x\nsize: [32, 32\nspawn_sites: {")
    with pytest.raises(ConfigError, match=r"broken.yaml: malformed YAML at line \d+"):
        load_map(p)


@pytest.mark.parametrize("edit,field", [
    ("hp: 100", "hp: -100"),
    ("range: 0.1", "range: fast"),
    ("race: protoss", "race: elf"),
])
def test_bad_unit_table(tmp_path, edit, field):
    text = DEFAULT_UNITS_FILE.read_text().replace(edit, field, 1)
    p = tmp_path / "units.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_units(p)
    assert str(p) in str(err.value) and "zealot" in str(err.value)


def test_missing_unit_field(tmp_path):
    p = tmp_path / "units.yaml"
    p.write_text(textwrap.dedent("""
        zealot: {race: protoss, hp: 100, shield: 50, armor: 1, damage: 8, hits: 2, bonus: {},
                 cooldown: 0.857, range: 0.1, speed: 3.15, sight: 9, attributes: [light], cooldown_norm: 22}
    """))
    with pytest.raises(ConfigError, match="zealot': missing field 'radius'"):
        load_units(p)


def test_cli_bad_map_one_line_no_traceback(tmp_path):
    path = write_map(tmp_path, lambda d: d["spawn_sites"]["west"].update(center=[-3.0, 16.0]))
    res = subprocess.run([sys.executable, "-m", "ccoma.cli", "maps", "check", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "spawn_sites.west.center" in lines[0] and "outside" in lines[0]


def test_cli_unknown_map_lists_shipped():
    res = CliRunner().invoke(cli, ["maps", "check", "nosuchmap"])
    assert res.exit_code == 2 and "shipped maps" in res.output and "2s3z" in res.output


@pytest.mark.parametrize("edit,replacement,unit,field", [
    ("heal: 12.6", "heal: -1", "medivac", "heal"),
    (", air: true", ", air: maybe", "medivac", "air"),
    ("energy_max: 200", "energy_max: 0", "medivac", "energy_max"),
    ("splash: 2.2", "splash: wide", "baneling", "splash"),
])
def test_bad_mechanic_fields(tmp_path, edit, replacement, unit, field):
    p = tmp_path / "units.yaml"
    p.write_text(DEFAULT_UNITS_FILE.read_text().replace(edit, replacement, 1))
    with pytest.raises(ConfigError) as err:
        load_units(p)
    msg = str(err.value)
    assert f"unit '{unit}'" in msg and f"'{field}'" in msg and "\n" not in msg


@pytest.mark.parametrize("mutate,field", [
    (lambda d: d["agents"].update(spawn=["west", "west"]), "lists 2 sites for 5 units"),
    (lambda d: d["agents"].update(spawn=["west"] * 4 + ["moon"]), "unknown spawn site 'moon'"),
    (lambda d: d.update(enemy_goal="moon"), "enemy_goal"),
])
def test_bad_split_spawns_and_goal(tmp_path, mutate, field):
    with pytest.raises(ConfigError) as err:
        load_map(write_map(tmp_path, mutate))
    assert field in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("mutate,field", [
    (lambda d: d.update(smac={"map_type": "stalkers_and_zealots", "unit_type_bits": 2,
                              "agent_types": [[]], "enemy_types": ["zealot", "stalker"]}), "smac.agent_types"),
    (lambda d: d.update(smac={"map_type": ["marines"], "unit_type_bits": 0}), "smac.map_type"),
])
def test_bad_smac_block_is_one_line(tmp_path, mutate, field):
    """Found by the fuzz suite: a list inside a unit-type order raised TypeError (unhashable)."""
    with pytest.raises(ConfigError) as err:
        load_map(write_map(tmp_path, mutate))
    assert field in str(err.value) and "\n" not in str(err.value)
