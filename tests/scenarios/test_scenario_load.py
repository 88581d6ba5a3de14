"""Loading a scenario: once per process and file content, immutable, one identity for a name and a path."""
from __future__ import annotations

import shutil

import pytest

from ccoma.errors import ConfigError
from ccoma.scenarios import SCENARIOS_DIR, load_scenario, scenario_id


def test_loaded_once_and_shared():
    first = load_scenario("shifting_spawn")
    assert load_scenario("shifting_spawn") is first
    scaled = first.rescaled(1000, 500)
    assert scaled is not first and scaled.compiled is first.compiled   # rescaling reuses the tables
    assert (scaled.train_steps, scaled.deploy_steps) == (1000, 500)
    assert first.train_steps != 1000                                     # the shared one is untouched


def test_scenario_is_immutable():
    scn = load_scenario("shifting_spawn")
    with pytest.raises(AttributeError, match="immutable"):
        scn.train_steps = 5
    with pytest.raises(AttributeError):
        scn.compiled.tables = ()  # the compiled tables are a frozen dataclass


def test_an_edited_file_is_read_again(tmp_path):
    path = tmp_path / "mine.yaml"
    text = (SCENARIOS_DIR / "shifting_spawn.yaml").read_text().replace("name: shifting_spawn", "name: mine")
    path.write_text(text)
    before = load_scenario(path)
    path.write_text(text.replace("description: ", "description: edited ", 1))
    after = load_scenario(path)
    assert after is not before and after.description.startswith("edited ")


def test_a_path_and_a_name_have_one_identity(tmp_path):
    copy = tmp_path / "shifting_spawn.yaml"
    shutil.copyfile(SCENARIOS_DIR / "shifting_spawn.yaml", copy)
    names = {scenario_id("shifting_spawn"), scenario_id(copy), scenario_id(str(copy)),
             load_scenario(copy).name, load_scenario("shifting_spawn").name}
    assert names == {"shifting_spawn"}


def test_a_name_field_other_than_the_file_name_is_an_error(tmp_path):
    path = tmp_path / "other.yaml"
    shutil.copyfile(SCENARIOS_DIR / "shifting_spawn.yaml", path)
    with pytest.raises(ConfigError, match=r"other\.yaml: field 'name': 'shifting_spawn' differs from the file name"):
        load_scenario(path)
