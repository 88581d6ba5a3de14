"""Bad scenario files: one clear error naming the file and the problem, from the library and the CLI."""
from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from ccoma.errors import ConfigError
from ccoma.scenarios import load_scenario

VALID = {
    "description": "a small valid scenario the cases below break one way each",
    "map": "dynamic_5v5",
    "protocol": {"train_steps": 1000, "deploy_steps": 1000, "unseen_from": 200},
    "agents": {"fixed": ["stalker", "stalker", "zealot", "zealot", "zealot"]},
    "phases": {
        "known": {"enemies": {"n_units": 5, "fixed": ["stalker", "stalker"], "unit_types": ["zealot", "hydralisk"],
                              "weights": [0.75, 0.25], "max": {"hydralisk": 1}},
                  "start_positions": {"dist_type": "sites", "sites": ["east", "east_north"]}},
        "new": {"enemies": {"n_units": 5, "fixed": ["stalker", "stalker"], "unit_types": ["zealot", "hydralisk"]},
                "start_positions": {"dist_type": "sites", "sites": ["north", "behind"]}},
    },
    "schedule": {"train": [{"phase": "known"}],
                 "deploy": [{"until": 200, "phase": "known"}, {"from": 200, "phase": "new"}]},
}


def _set(path, value):
    def mutate(doc):
        *head, last = path
        node = doc
        for key in head:
            node = node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return mutate


_DELETE = object()
ENEMIES = ("phases", "known", "enemies")
CASES = {
    "unknown unit": (_set(ENEMIES + ("fixed",), ["stalker", "stalkr"]), "unknown unit 'stalkr'"),
    "unknown spawn site": (_set(("phases", "new", "start_positions", "sites"), ["north", "nowhere"]),
                           "unknown spawn site 'nowhere'"),
    "weights do not sum to 1": (_set(ENEMIES + ("weights",), [0.5, 0.6]), "sum to 1.1, not 1"),
    "unsatisfiable constraint": (_set(ENEMIES + ("min",), {"hydralisk": 2}), "no team of 5 units satisfies"),
    "phases overlap": (_set(("schedule", "deploy"), [{"until": 300, "phase": "known"}, {"from": 200, "phase": "new"}]),
                       "overlaps"),
    "phases leave a gap": (_set(("schedule", "deploy"), [{"until": 200, "phase": "known"},
                                                         {"from": 300, "phase": "new"}]), "gap"),
    "schedule stops early": (_set(("schedule", "train"), [{"until": 900, "phase": "known"}]), "stops before"),
    "team sizes change": (_set(("phases", "new", "enemies", "n_units"), 4), "team sizes change"),
    "unknown top-level key": (_set(("phasess",), {}), "unknown key 'phasess'"),
    "unknown phase key": (_set(("phases", "new", "enemy"), {}), "unknown key 'phases.new.enemy'"),
    "unknown phase in schedule": (_set(("schedule", "train"), [{"phase": "knwon"}]), "unknown phase 'knwon'"),
    "unused phase": (_set(("phases", "spare"), {}), "never scheduled"),
    "unseen before unseen_from": (_set(("protocol", "unseen_from"), 500), "before unseen_from=500"),
    "unseen_from not set": (_set(("protocol", "unseen_from"), None), "protocol.unseen_from is not set"),
    "unknown map": (_set(("map",), "atlantis"), "no such map"),
    "missing description": (_set(("description",), _DELETE), "missing field 'description'"),
    "teams would overlap": (_set(("phases", "new", "start_positions", "sites"), ["west"]), "too close"),
    "two rules in one entry": (_set(("schedule", "train"), [{"phase": "known", "mix": {"known": 1.0}}]),
                               "exactly one of"),
}


def _bad_file(tmp_path, name):
    mutate, _ = CASES[name]
    doc = copy.deepcopy(VALID)
    mutate(doc)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_the_valid_base_loads(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(yaml.safe_dump(VALID, sort_keys=False))
    scn = load_scenario(path)
    assert scn.deploy_phases == ("known", "new") and scn.unseen_from == 200


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_scenario_is_one_clear_error(tmp_path, case):
    path = _bad_file(tmp_path, case)
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert CASES[case][1] in message, message
    assert "\n" not in message


def test_malformed_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("description: x\nphases: [known, new\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: malformed YAML at line"):
        load_scenario(path)


def test_unknown_scenario_name_lists_known_ones():
    with pytest.raises(ConfigError, match="shipped scenarios: .*paper_dynamic"):
        load_scenario("no_such_scenario")


@pytest.mark.parametrize("case", ["unknown unit", "phases overlap", "weights do not sum to 1"])
def test_cli_show_bad_file_is_one_line(tmp_path, case):
    from click.testing import CliRunner

    from ccoma.cli import cli

    path = _bad_file(tmp_path, case)
    res = CliRunner().invoke(cli, ["scenarios", "show", str(path)])
    assert res.exit_code != 0
    assert "Traceback" not in res.output
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and CASES[case][1] in err[0]


def test_cli_subprocess_bad_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("description: [unclosed\n")
    proc = subprocess.run([sys.executable, "-m", "ccoma.cli", "scenarios", "show", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "broken.yaml" in lines[0] and "malformed YAML" in lines[0]
