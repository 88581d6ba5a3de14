"""Scenarios: a scenario file (``scenarios/<name>.yaml``) -> one episode spec per episode, as steps go by.

    format.py    parse + validate the YAML into frozen dataclasses (no geometry)
    sampler.py   counter-based random numbers, compiled phase tables, team draws, formations
    scenario.py  :class:`Scenario` (a validated scenario, its stages and phases) and the
                 scheduler :class:`ScenarioSource` (the EpisodeSource of one stage)

    scn = load_scenario("paper_dynamic")                  # scenarios/paper_dynamic.yaml (or a path)
    src = scn.source("deploy", seed=0, train_steps=50_000, deploy_steps=10_000)

Identity: a scenario is known by its file's stem everywhere (:func:`scenario_id`): the MLflow
experiment ``ccoma/<id>``, the report folder ``reports/<id>`` and the models ``ccoma-<id>-<method>``,
whether the command line named it (``shifting_spawn``) or gave a path (``my/shifting_spawn.yaml``).
A scenario is loaded once per process and file content, and is immutable.
"""
from ccoma.scenarios.scenario import (SCENARIOS_DIR, Scenario, ScenarioSource, Segment, list_scenarios,
                                      load_scenario, scenario_id, scenario_path)

__all__ = ["SCENARIOS_DIR", "Scenario", "ScenarioSource", "Segment", "list_scenarios", "load_scenario",
           "scenario_id", "scenario_path"]
