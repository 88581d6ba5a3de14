"""The continual-learning table: what each method's runs logged under ``cl/`` (ccoma.continual.metrics,
from the greedy performance matrix and the greedy test series), plus forward transfer against the
from-scratch reference runs (mode ``reference``), which needs several runs and is computed here.

A reference run trains a fresh learner of one algorithm only on one phase (param ``reference.phase``,
else the phase of its ``eval/<phase>/win_rate`` keys) and logs its greedy win rate on that phase
with step = its own env steps. The method's window on that phase is ``[unseen_from, unseen_from + L]``,
``L`` the reference's length. Every method of the reference's algorithm gets an FT; without reference
runs FT is "not measured".
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.frame import ScenarioData, label

NOT_MEASURED = "not measured"


def _phase_of(run: dict, keys: list[str]) -> str | None:
    phase = (run.get("params") or {}).get("reference.phase")
    if phase:
        return phase
    phases = sorted({k.split("/")[1] for k in keys if k.startswith("eval/") and k.endswith("/win_rate")})
    return phases[0] if len(phases) == 1 else None


def forward_transfer(data: ScenarioData) -> pd.DataFrame:
    """One row per (method, seed, phase) that has a reference: columns method, seed, phase, ft."""
    from ccoma.continual.metrics import forward_transfer as ft

    cols = ["method", "seed", "phase", "ft"]
    refs, runs = data.references, data.runs
    if refs is None or refs.empty or data.unseen_from is None:
        return pd.DataFrame(columns=cols)
    rows = []
    for algo, g in refs.groupby("algo"):
        by_run = {rid: r for rid, r in g.groupby("run_id")}
        info = runs.set_index("run_id")
        for phase in {_phase_of(info.loc[rid].to_dict(), list(r.key.unique())) for rid, r in by_run.items()} - {None}:
            key = f"eval/{phase}/win_rate"
            curves = [r[r.key == key].sort_values("step") for r in by_run.values()]
            curves = [c for c in curves if len(c)]
            if not curves:
                continue
            length = min(float(c.step.max()) for c in curves)
            grid = np.linspace(0, length, 101)
            mean_ref = np.mean([np.interp(grid, c.step, c.value) for c in curves], axis=0)
            window = (data.unseen_from, data.unseen_from + length)
            mine = data.metrics[(data.metrics.algo == algo) & (data.metrics.key == key)]
            for (method, seed), s in mine.groupby(["method", "seed"], sort=False):
                s = s.sort_values("step")
                rows.append({"method": method, "seed": seed, "phase": phase,
                             "ft": ft(s.step, s.value, window, grid, mean_ref)})
    return pd.DataFrame(rows, columns=cols)


def _mean(values) -> float:
    v = [x for x in values if x == x]
    return float(np.mean(v)) if v else math.nan


def _f(x: float, digits: int = 2) -> str:
    return "-" if x != x else f"{x:.{digits}f}"


def cl_table(data: ScenarioData) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, shifts): per method, means over its runs of every cl/ metric."""
    cl = data.metrics[data.metrics.key.str.startswith("cl/")]
    shifts = sorted({k.split("/", 2)[2] for k in cl.key if k.startswith("cl/recovered/")})
    phases = sorted({k.split("/", 2)[2] for k in cl.key if k.startswith("cl/forgetting/")})
    ft = forward_transfer(data)
    maint = (cl.key == "cl/maintenance").any()
    header = ["method", "runs", "avg perf (end)", "avg perf (over time)",
              *[f"forgetting {p}" for p in phases], "BWT", "forward transfer",
              *[f"recovered {s} (runs; mean steps)" for s in shifts], *(["maintenance"] if maint else [])]
    rows = []
    for method in data.methods():
        m = cl[cl.method == method]
        n = data.metrics[data.metrics.method == method].seed.nunique()

        def val(key):
            return _mean(m[m.key == key].value)
        mine = ft[ft.method == method].ft
        row = [label(method), str(n), _f(val("cl/avg_performance")), _f(val("cl/avg_performance_over_time")),
               *[_f(val(f"cl/forgetting/{p}")) for p in phases], _f(val("cl/bwt")),
               NOT_MEASURED if mine.empty else _f(_mean(mine))]
        for s in shifts:
            got = m[m.key == f"cl/recovered/{s}"].value
            steps = m[m.key == f"cl/recovery_steps/{s}"].value
            row.append(f"{int(got.sum())}/{len(got)}" + ("" if steps.empty else f"; {_mean(steps):,.0f}"))
        if maint:
            row.append(_f(val("cl/maintenance")))
        rows.append(row)
    return header, rows, shifts
