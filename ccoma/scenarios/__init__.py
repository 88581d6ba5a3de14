"""Scenarios: a scenario file (``scenarios/<name>.yaml``) -> one episode spec per episode, as steps go by.

    format.py    parse + validate the YAML into frozen dataclasses (no geometry)
    sampler.py   counter-based random numbers, compiled phase tables, team draws, formations
    scenario.py  :class:`Scenario` (a validated scenario, its stages and phases) and the
                 scheduler :class:`ScenarioSource` (the EpisodeSource of one stage)

    scn = load_scenario("paper_dynamic")                  # scenarios/paper_dynamic.yaml (or a path)
    src = scn.source("deploy", seed=0, train_steps=50_000, deploy_steps=10_000)
"""
from ccoma.scenarios.scenario import (SCENARIOS_DIR, Scenario, ScenarioSource, Segment, list_scenarios,
                                      load_scenario, scenario_path)

__all__ = ["SCENARIOS_DIR", "Scenario", "ScenarioSource", "Segment", "list_scenarios", "load_scenario",
           "scenario_path"]
