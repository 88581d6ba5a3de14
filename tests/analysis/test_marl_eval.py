"""The marl-eval export: mapping on a hand-built frame, its schema check, and the CLI on a real store.

marl-eval itself (PyPI id-marl-eval) pins pandas 1.4.4 and does not install beside pandas 3, so the
JSON is checked against its documented raw-data schema and the assumptions of its loader
(analysis.marl_eval.validate); the report (docs/metrics.md) records a one-off load with its own code.
"""
import json

import pandas as pd
import pytest
from click.testing import CliRunner

from analysis import marl_eval as me
from analysis.frame import ScenarioData

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _data(seeds=(0, 1)) -> ScenarioData:
    rows = []
    for method in ("c-coma", "coma"):
        for seed in seeds:
            for step, win in zip((0, 100, 200, 300), (0.8, 0.8, 0.2, 0.6 if method == "c-coma" else 0.2)):
                rows += [{"method": method, "seed": seed, "mode": "x", "key": "deploy/test/win_rate", "step": step,
                          "value": win},
                         {"method": method, "seed": seed, "mode": "x", "key": "deploy/test/return", "step": step,
                          "value": 20 * win},
                         {"method": method, "seed": seed, "mode": "x", "key": "deploy/win_rate", "step": step,
                          "value": 0.0}]  # the online series must not be exported
    parent = {"backend": "ccoma-sim 1.0"}
    return ScenarioData("Shift", True, parent, pd.DataFrame(), pd.DataFrame(rows), unseen_from=200)


def test_mapping_follows_the_documented_schema():
    raw = me.to_marl_eval({"Shift": _data()})
    runs = raw["ccoma-sim"]["shift"]["c-coma"]
    assert list(raw["ccoma-sim"]["shift"]) == ["c-coma", "coma"] and list(runs) == ["run_0", "run_1"]
    assert list(runs["run_0"]) == ["step_0", "step_1", "step_2", "step_3", "absolute_metrics"]
    assert runs["run_0"]["step_3"] == {"step_count": 300, "win_rate": [0.6], "return": [12.0]}
    # absolute: the greedy mean after the shift at 200, (0.2 + 0.6) / 2 over [200, 300]
    assert runs["run_1"]["absolute_metrics"]["win_rate"] == [pytest.approx(0.4)]
    assert raw["ccoma-sim"]["shift"]["coma"]["run_0"]["absolute_metrics"]["win_rate"] == [pytest.approx(0.2)]
    assert me.validate(raw) == []
    json.dumps(raw)  # plain JSON types only


def test_validate_names_what_marl_eval_would_trip_on():
    raw = me.to_marl_eval({"Shift": _data()})
    raw["ccoma-sim"]["shift"]["c,coma"] = raw["ccoma-sim"]["shift"].pop("c-coma")
    del raw["ccoma-sim"]["shift"]["coma"]["run_1"]["absolute_metrics"]
    raw["ccoma-sim"]["shift"]["coma"]["run_0"]["step_2"]["win_rate"] = 0.2
    problems = "\n".join(me.validate(raw))
    assert "without commas" in problems and "no absolute_metrics" in problems
    assert "step_2/win_rate: a list of finite numbers" in problems
    uneven = me.to_marl_eval({"Shift": _data(seeds=(0, 1)), "Other": _data(seeds=(0,))})
    assert any("assumes one shape" in p for p in me.validate(uneven))
    assert me.validate({}) == ["no environments"]


def test_cli_exports_a_logged_evaluate(sqlite_store, tmp_path):
    from ccoma.cli import cli
    from synthetic_runs import log_evaluate

    log_evaluate(sqlite_store, scenario="small", methods=("c-coma", "coma"), seeds=(0, 1), deploy_steps=400_000,
                 unseen_from=100_000, train_steps=200_000)
    out = tmp_path / "me"
    result = CliRunner().invoke(cli, ["report", "-s", "small", "--tracking-uri", sqlite_store, "--format",
                                      "marl-eval", "--output", str(out)])
    assert result.exit_code == 0, result.output
    raw = json.loads((out / "marl_eval.json").read_text())
    assert me.validate(raw) == [] and not (out / "report.md").exists()
    runs = raw["ccoma-sim"]["small"]["c-coma"]
    assert len(runs) == 2 and len(runs["run_0"]) - 1 >= 40                  # >= 40 greedy test points
    assert runs["run_0"]["step_0"]["step_count"] == 0
    bad = CliRunner().invoke(cli, ["report", "-s", "nothing_here", "--tracking-uri", sqlite_store, "--format",
                                   "marl-eval", "--output", str(out)])
    assert bad.exit_code == 2 and "nothing to export" in bad.output
