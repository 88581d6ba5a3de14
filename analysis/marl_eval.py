"""Export the greedy test results as marl-eval raw data (Gorsane et al. 2022, instadeepai/marl-eval).

marl-eval's documented schema::

    {env: {task: {algorithm: {"run_<n>": {"step_<k>": {"step_count": int, metric: [float, ...]},
                                          ..., "absolute_metrics": {metric: [float, ...]}}}}}}

Mapping: env = the backend without its version ("ccoma-sim"), task = scenario, algorithm = method,
``run_<i>`` = the i-th finished seed (seeds in order), ``step_<k>`` = the k-th greedy test point with
``step_count`` its deployment env step, metrics ``win_rate`` and ``return`` = the greedy test values
(``deploy/test/*``; one value per point: the harness logs the mean over the test episodes, not each
episode). ``absolute_metrics`` = the run's greedy mean after the shift (normalised area under the
curve from ``unseen_from``; the whole deployment when there is no shift), the same score the report's
aggregates use. marl-eval lower-cases every key and assumes every algorithm of an environment has the
same runs and steps; :func:`validate` checks all of it and the exporter reports what does not hold.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from analysis.frame import ScenarioData

METRICS = {"win_rate": "deploy/test/win_rate", "return": "deploy/test/return"}


def _env_name(datas: dict[str, ScenarioData]) -> str:
    backends = sorted({d.parent["backend"] for d in datas.values() if d.parent and d.parent.get("backend")})
    name = backends[0].split()[0] if backends else "ccoma"
    return name.lower()


def _run_entry(m, unseen_from) -> dict | None:
    """One run's steps and absolute metrics from its tidy metrics ``m`` (None without a test series)."""
    from ccoma.continual.metrics import auc

    series = {name: m[m.key == key].sort_values("step") for name, key in METRICS.items()}
    win = series["win_rate"]
    if win.empty:
        return None
    steps = win.step.to_list()
    run: dict = {}
    for k, step in enumerate(steps):
        point = {"step_count": int(step)}
        for name, s in series.items():
            if len(s):
                point[name] = [float(np.interp(step, s.step, s.value))]
        run[f"step_{k}"] = point
    start = unseen_from if unseen_from is not None and unseen_from < steps[-1] else steps[0]
    run["absolute_metrics"] = {name: [auc(s.step, s.value, start, s.step.max()) if len(s) > 1 else float(s.value.iloc[0])]
                               for name, s in series.items() if len(s)}
    return run


def to_marl_eval(datas: dict[str, ScenarioData]) -> dict:
    """The marl-eval raw-data dictionary of every scenario (task) in ``datas``."""
    tasks: dict = {}
    for scenario, data in datas.items():
        algos: dict = {}
        for method in data.methods():
            mine = data.metrics[data.metrics.method == method]
            runs = {}
            for seed in sorted(mine.seed.dropna().unique()):
                entry = _run_entry(mine[mine.seed == seed], data.unseen_from)
                if entry is not None:
                    runs[f"run_{len(runs)}"] = entry
            if runs:
                algos[method.lower()] = runs
        if algos:
            tasks[scenario.lower()] = algos
    return {_env_name(datas): tasks} if tasks else {}


def validate(raw: dict) -> list[str]:
    """Problems that stop marl-eval's loader (data_process_pipeline, create_matrices_for_rliable) or
    that its DiagnoseData check reports; [] when the data follows the schema."""
    problems = []
    if not isinstance(raw, dict) or not raw:
        return ["no environments"]
    for env, tasks in raw.items():
        shapes, algos_per_task = set(), set()
        for task, algos in tasks.items():
            algos_per_task.add(tuple(sorted(algos)))
            for algo, runs in algos.items():
                if "," in algo or algo != algo.lower():
                    problems.append(f"{env}/{task}: algorithm name {algo!r} must be lower case without commas")
                for run, steps in runs.items():
                    where = f"{env}/{task}/{algo}/{run}"
                    if not run.startswith("run_"):
                        problems.append(f"{where}: run keys are run_<n>")
                    if "absolute_metrics" not in steps:
                        problems.append(f"{where}: no absolute_metrics")
                    names = [k for k in steps if k != "absolute_metrics"]
                    shapes.add((len(runs), len(names)))
                    problems += _check_steps(where, steps, names)
        if len(shapes) > 1:
            problems.append(f"{env}: runs and steps differ between algorithms/tasks {sorted(shapes)}; "
                            "marl-eval assumes one shape")
        if len(algos_per_task) > 1:
            problems.append(f"{env}: the tasks do not share one set of algorithms")
    return problems


def _check_steps(where: str, steps: dict, names: list[str]) -> list[str]:
    problems, metrics, last = [], None, -1
    for name in names:
        point = steps[name]
        if not name.startswith("step_") or not isinstance(point.get("step_count"), int):
            problems.append(f"{where}/{name}: a step_<k> with an integer step_count")
            continue
        if point["step_count"] <= last:
            problems.append(f"{where}/{name}: step_count must increase")
        last = point["step_count"]
        mine = {k for k in point if k != "step_count"}
        metrics = mine if metrics is None else metrics
        if mine != metrics:
            problems.append(f"{where}/{name}: metrics {sorted(mine)} differ from {sorted(metrics)}")
        for k in mine:
            if not isinstance(point[k], list) or not all(isinstance(v, float) and math.isfinite(v) for v in point[k]):
                problems.append(f"{where}/{name}/{k}: a list of finite numbers")
    absolute = steps.get("absolute_metrics", {})
    if metrics is not None and absolute and not set(absolute) <= metrics:
        problems.append(f"{where}/absolute_metrics: metrics {sorted(set(absolute) - metrics)} have no steps")
    return problems


def write(datas: dict[str, ScenarioData], path: str | Path) -> tuple[Path, list[str]]:
    """Write the JSON to ``path``; returns (path, schema problems marl-eval's tools would hit)."""
    raw = to_marl_eval(datas)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(raw, indent=1))
    return path, validate(raw) if raw else ["no greedy test series (deploy/test/win_rate) to export"]
