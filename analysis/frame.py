"""Tidy-frame helpers over :func:`ccoma.tracking.load_frame` (analysis never talks to MLflow itself).

Everything here is a pure function of the frames, so figures, tables and the paper comparison can be
tested on hand-built frames. Summary numbers and their definitions (used by the report):

- every summary reads the greedy test series ``deploy/test/win_rate`` (pymarl's test win rate, the
  same measure for every method) unless another key is named;
- pre-shift: mean win rate over the last 20% of the steps before ``unseen_from``;
- post-shift low: the minimum, over the first half of the post-shift period, of the win rate smoothed
  over 5 logging points (the dip after unseen situations begin);
- final: mean win rate over the last 10% of deployment steps;
- table intervals: 95% percentile-bootstrap intervals of the mean over seeds (analysis.stats.mean_ci);
  none with one seed. Figure bands: 95% Student-t intervals (:func:`ci95_band`).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable

import numpy as np
import pandas as pd

# The control "frozen weights acting with the continual method's behaviour policy" sits beside the
# continual method it controls for (COMA-explore beside C-COMA).
LABELS = {"c-coma": "C-COMA", "coma-explore": "COMA-explore", "coma": "COMA", "qmix": "QMIX", "vdn": "VDN",
          "c-qmix": "C-QMIX", "c-vdn": "C-VDN", "qmix-explore": "QMIX-explore", "vdn-explore": "VDN-explore",
          "iql": "IQL", "c-iql": "C-IQL", "mfq": "MFQ", "c-mfq": "C-MFQ"}
ORDER = list(LABELS)
TEST_KEY = "deploy/test/win_rate"        # the headline: greedy test win rate (pymarl's test_battle_won_mean)
ONLINE_KEY = "deploy/win_rate"           # the behaviour policy's own episodes, last 30
ONLINE = "online (behaviour policy)"
# Stable colours: a method looks the same in every figure.
COLORS = {"c-coma": "#d62728", "coma-explore": "#e377c2", "coma": "#1f77b4", "qmix": "#2ca02c", "vdn": "#9467bd",
          "c-qmix": "#ff7f0e", "c-vdn": "#8c564b", "qmix-explore": "#98df8a", "vdn-explore": "#c5b0d5",
          "iql": "#7f7f7f", "c-iql": "#bcbd22", "mfq": "#17becf", "c-mfq": "#aec7e8"}
# Student t 0.975 quantiles by degrees of freedom (no scipy dependency); beyond 30 an expansion.
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042]


def label(method: str) -> str:
    if method.endswith("-reference"):  # from-scratch reference runs (mode reference)
        return f"{label(method[:-len('-reference')])} reference (from scratch)"
    return LABELS.get(method, method.upper())


def t975(df: int) -> float:
    if df <= 0:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964  # Cornish-Fisher expansion of the t quantile around the normal one
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def ci95(values: Iterable[float], bounds: tuple[float, float] = (-math.inf, math.inf)) -> tuple[float, float, float]:
    """(mean, low, high) of a 95% t-interval over seeds; low/high are NaN with fewer than 2 values.

    ``bounds``: the range the quantity can take (a win rate: 0 to 1); the interval is clipped to it,
    since with few seeds a t-interval easily reaches values no run can have."""
    x = np.asarray([v for v in values if v == v], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = t975(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return mean, max(mean - half, bounds[0]), min(mean + half, bounds[1])


def ci95_curve_point(values, bounds: tuple[float, float] = (-math.inf, math.inf)) -> tuple[float, float, float]:
    """(mean, low, high) as a curve draws it: the t-interval of :func:`ci95`, collapsed to the mean
    where it is undefined (one seed)."""
    mean, low, high = ci95(values, bounds)
    return (mean, mean, mean) if low != low else (mean, low, high)


def ci95_band(values, bounds: tuple[float, float] = (-math.inf, math.inf)) -> tuple[float, float]:
    """seaborn ``errorbar=`` callable: the same t-interval (collapses to the value for one seed)."""
    return ci95_curve_point(values, bounds)[1:]


def bounds_of(key: str) -> tuple[float, float]:
    """The range a metric can take: win rates 0-1, forgetting -1-1, returns (SMAC's, positive only) and
    step counts >= 0."""
    if key.endswith("win_rate"):
        return 0.0, 1.0
    if key.endswith(("return", "recovery_steps")):
        return 0.0, math.inf
    if key.endswith("forgetting"):  # a difference of two win rates
        return -1.0, 1.0
    return -math.inf, math.inf


@dataclasses.dataclass
class ScenarioData:
    """What the store holds for one scenario: usable curves and the runs that are not usable."""

    scenario: str
    has_experiment: bool
    parent: dict | None            # the evaluate run (row of load_runs) or None
    runs: pd.DataFrame             # child runs, every status
    metrics: pd.DataFrame          # tidy points of finished child runs only (no reference runs)
    unseen_from: int | None
    references: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)  # finished mode=reference runs

    @property
    def excluded(self) -> pd.DataFrame:
        return self.runs[self.runs.status != "finished"]

    def methods(self) -> list[str]:
        """Methods with at least one finished run, in the paper's order."""
        have = set(self.metrics.method)
        return [m for m in ORDER if m in have] + sorted(have - set(ORDER))


def split_scenarios(metrics: pd.DataFrame, runs: pd.DataFrame, experiments: dict) -> dict[str, ScenarioData]:
    """Group what tracking returned (metrics, runs, experiment ids) per scenario."""
    out = {}
    for scenario, exp_id in experiments.items():
        r = runs[runs.scenario == scenario] if len(runs) else runs
        parents = r[r.kind == "evaluate"] if len(r) else r
        parent = parents.iloc[0].to_dict() if len(parents) else None
        children = r[r.kind == "method"] if len(r) else r
        done = children[children.status == "finished"] if len(children) else children
        finished = set(done.run_id[done["mode"] != "reference"]) if len(done) else set()
        refs = set(done.run_id[done["mode"] == "reference"]) if len(done) else set()
        m = metrics[metrics.run_id.isin(finished)] if len(metrics) else metrics
        ref = metrics[metrics.run_id.isin(refs)] if len(metrics) else metrics
        unseen = _unseen_from(parent, children)
        out[scenario] = ScenarioData(scenario, exp_id is not None, parent, children.reset_index(drop=True),
                                     m.reset_index(drop=True), unseen, ref.reset_index(drop=True))
    return out


def _unseen_from(parent: dict | None, children: pd.DataFrame) -> int | None:
    values = [parent.get("unseen_from")] if parent else []
    values += list(children.unseen_from) if len(children) else []
    values = [int(v) for v in values if v is not None and not pd.isna(v)]
    return values[0] if values else None


def load(scenarios: Iterable[str], tracking_uri: str | None = None, tracker=None) -> dict[str, ScenarioData]:
    """Everything the report needs, from the latest evaluate of each scenario (via ccoma.tracking)."""
    if tracker is None:
        from ccoma.tracking import Tracker

        tracker = Tracker(tracking_uri)
    scenarios = list(scenarios)
    experiments = tracker.reader.experiments(scenarios)
    return split_scenarios(tracker.reader.load_frame(scenarios), tracker.reader.load_runs(scenarios), experiments)


def curves(metrics: pd.DataFrame, key: str, points: int = 200) -> pd.DataFrame:
    """Per-run series of ``key`` resampled onto one step grid (runs log at slightly different steps).

    Returns columns method, seed, step, value; each run is interpolated only within its own range.
    """
    sel = metrics[metrics.key == key]
    if sel.empty:
        return pd.DataFrame(columns=["method", "seed", "step", "value"])
    grid = np.linspace(0, sel.step.max(), points)
    parts = []
    for (method, seed), g in sel.groupby(["method", "seed"], sort=False):
        g = g.sort_values("step")
        inside = grid[(grid >= g.step.min()) & (grid <= g.step.max())]
        parts.append(pd.DataFrame({"method": method, "seed": seed, "step": inside,
                                   "value": np.interp(inside, g.step, g.value)}))
    return pd.concat(parts, ignore_index=True)


def _per_run(series: pd.DataFrame, unseen_from: int | None, end: int) -> dict[str, float]:
    s = series.sort_values("step")
    steps, vals = s.step.to_numpy(), s.value.to_numpy()
    final = vals[steps >= 0.9 * end].mean() if (steps >= 0.9 * end).any() else math.nan
    if unseen_from is None or not (steps < unseen_from).any() or not (steps > unseen_from).any():
        return {"pre": math.nan, "low": math.nan, "final": final}
    before = steps < unseen_from
    pre = vals[before & (steps >= 0.8 * unseen_from)].mean() if (before & (steps >= 0.8 * unseen_from)).any() \
        else vals[before][-1]
    smooth = pd.Series(vals).rolling(5, min_periods=1, center=True).mean().to_numpy()
    window = (steps > unseen_from) & (steps <= unseen_from + 0.5 * (end - unseen_from))
    low = smooth[window].min() if window.any() else math.nan
    return {"pre": float(pre), "low": float(low), "final": float(final)}


def run_summary(data: ScenarioData, key: str = TEST_KEY) -> pd.DataFrame:
    """One row per finished run: method, mode, seed, pre, low, final (of ``key``), forgetting (mean of
    cl/forgetting/<phase>), recovery_steps (mean over shifts that recovered), recovered (every shift
    recovered: all cl/recovered/<shift> are 1; runs without those flags: any cl/recovery_steps)."""
    rows = []
    sel = data.metrics[data.metrics.key == key]
    end = int(sel.step.max()) if len(sel) else 0
    for (method, seed), g in sel.groupby(["method", "seed"], sort=False):
        m = data.metrics[(data.metrics.method == method) & (data.metrics.seed == seed)]
        forget = m[m.key.str.startswith("cl/forgetting/")].value
        recov = m[m.key.str.startswith("cl/recovery_steps/")].value
        flags = m[m.key.str.startswith("cl/recovered/")].value  # 1/0 per shift (ccoma.continual.metrics)
        rows.append({"method": method, "mode": g["mode"].iloc[0], "seed": seed,
                     **_per_run(g, data.unseen_from, end),
                     "forgetting": forget.mean() if len(forget) else math.nan,
                     "recovery_steps": recov.mean() if len(recov) else math.nan,
                     "recovered": bool((flags > 0).all()) if len(flags) else bool(len(recov))})
    return pd.DataFrame(rows, columns=["method", "mode", "seed", "pre", "low", "final", "forgetting",
                                       "recovery_steps", "recovered"])


def method_table(per_run: pd.DataFrame, key: str = TEST_KEY) -> pd.DataFrame:
    """Per method: seeds, and mean/low/high of pre, low, final (95% bootstrap intervals of the mean
    over seeds, analysis.stats.mean_ci, within the range of ``key``, the metric run_summary summarised)."""
    from analysis.stats import mean_ci

    rows = []
    for method in [m for m in ORDER if m in set(per_run.method)] + sorted(set(per_run.method) - set(ORDER)):
        g = per_run[per_run.method == method]
        row = {"method": method, "mode": g["mode"].iloc[0], "seeds": len(g)}
        for col in ("pre", "low", "final"):
            row[col], row[f"{col}_lo"], row[f"{col}_hi"] = mean_ci(g[col], bounds_of(key))
        rows.append(row)
    return pd.DataFrame(rows)
