"""The continual-learning summary of a deployment: where the world shifts, and the CL metrics."""
from __future__ import annotations

from ccoma.job.state import StageState


def shifts(scenario, deploy_steps: int) -> dict[str, int]:
    """Deployment steps where the world changes: unseen_from, and every later phase boundary."""
    at = {}
    if scenario.unseen_from:
        at["unseen"] = int(scenario.unseen_from)
    for i, b in enumerate(scenario.boundaries("deploy")):
        if 0 < b < deploy_steps and b not in at.values():
            at[f"boundary{i}"] = int(b)
    return at


def phase_windows(scenario, phases: list[str]) -> dict[str, tuple[int, int]]:
    """Where each deployment phase is first active: (first step, end of that stretch)."""
    windows = {}
    for seg in scenario.segments("deploy"):
        w = [max(a, b) for a, b in zip(seg.w_start, seg.w_end)]
        for i, name in enumerate(scenario.phase_names):
            if name in phases and w[i] > 0 and name not in windows:
                windows[name] = (seg.start, seg.end)
    return windows


def phase_stretches(scenario, phases: list[str]) -> dict[str, list[tuple[int, int]]]:
    """Every stretch of the deployment in which each phase has weight (repeated shifts: maintenance)."""
    active: dict[str, list[tuple[int, int]]] = {}
    for seg in scenario.segments("deploy"):
        w = [max(a, b) for a, b in zip(seg.w_start, seg.w_end)]
        for i, name in enumerate(scenario.phase_names):
            if name in phases and w[i] > 0:
                active.setdefault(name, []).append((seg.start, seg.end))
    return active


def cl_summary(scenario, state: StageState, deploy_steps: int) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics, tags): the performance-matrix metrics (forgetting, BWT, average performance,
    maintenance over repeated stretches) and the recovery after each shift measured on the greedy
    test curve (the same measure for every method); see docs/metrics.md."""
    from ccoma.continual.metrics import continual_metrics

    phases = list(scenario.deploy_phases)
    steps = [e["step"] for e in state.evals]
    matrix = [[e["win_rate"][p] for p in phases] for e in state.evals]
    at = shifts(scenario, deploy_steps)
    cl = continual_metrics(matrix, steps, phases, phase_windows(scenario, phases), state.tests["steps"],
                           state.tests["win_rate"], at, phase_stretches(scenario, phases))
    tags = {f"ccoma.recovered.{name}": "true" if cl.get(f"recovered/{name}") else "false"
            for name in at if f"recovered/{name}" in cl}
    return cl, tags


def finish_runs(spec, scenario, states: list[StageState], runs: dict) -> dict:
    """Log each deployment's CL summary, finish every method run, and return {method: results}."""
    out = {}
    if all(s.stage.is_train for s in states):  # `ccoma train`: the training stage only
        for mode, run in runs.items():
            run.finish("finished")
            out[spec.methods[mode]] = {"run_id": run.run_id, "mode": "train", "series": states[0].series,
                                       "evals": [], "cl": {}}
        return out
    for stage in [s for s in states if not s.stage.is_train]:
        mode = stage.stage.mode
        method, run = spec.methods[mode], runs[mode]
        cl = {}
        if not stage.stage.is_reference:  # a reference's eval/<phase> curve is what forward transfer reads
            cl, tags = cl_summary(scenario, stage, spec.budget.deploy_steps)
            run.log_series([(f"cl/{k}", v, stage.steps) for k, v in cl.items() if v == v])
            if tags:
                run.set_tags(tags)
        run.finish("finished")
        out[method] = {"run_id": run.run_id, "mode": mode, "series": stage.series, "test": stage.tests,
                       "evals": stage.evals, "cl": cl}
    return out
