"""Aggregate statistics over runs, as rliable and marl-eval report them (Agarwal et al., NeurIPS 2021).

Scores are per-run numbers from the greedy test series ``deploy/test/win_rate`` (pymarl's test win
rate; see :func:`run_scores`): ``deployment``, the time-average over the whole deployment (normalised
area under the curve), ``post_shift``, the same from the step unseen situations begin to the end, and
``final``, the mean over the last 10% of deployment steps. On them:

- IQM (the mean of the middle 50% of runs, ``scipy.stats.trim_mean(x, 0.25)``), mean and median,
  each with a 95% percentile stratified-bootstrap interval (runs resampled with replacement within
  each task; one report section is one task);
- the probability of improvement P(X > Y) = U / (n m), Mann-Whitney's U of X's runs against Y's,
  with a 95% bootstrap interval resampling both methods' runs independently;
- performance profiles: the fraction of a method's post-shift test points above each win rate tau,
  averaged over runs, with a 95% bootstrap band over runs.

The estimators are rliable's; the resampling is SciPy's (``scipy.stats.bootstrap``). rliable 1.2.0
itself cannot be installed beside this project's pandas 3: it requires ``arch < 8`` and arch 7
fails to import with pandas 3 (arch 8 fixed that, but renamed the ``random_state`` argument rliable
passes). Fewer than :data:`MIN_SEEDS` runs per method make every interval unreliable; the report says so.
"""
from __future__ import annotations

import math
import warnings
from typing import Mapping

import numpy as np
import pandas as pd

MIN_SEEDS = 5
REPS = 2000
LEVEL = 0.95
TEST_KEY = "deploy/test/win_rate"
SCORES = {"deployment": "mean over the whole deployment", "post_shift": "mean after the shift",
          "final": "mean over the last 10% of deployment"}
AGGREGATES = ("iqm", "mean", "median")


def run_scores(metrics: pd.DataFrame, unseen_from: int | None, key: str = TEST_KEY) -> pd.DataFrame:
    """One row per (method, seed): columns method, mode, seed, deployment, post_shift, final.

    ``deployment`` and ``post_shift`` are normalised areas under the run's ``key`` curve (trapezoid)
    over ``[first step, last step]`` and ``[unseen_from, last step]``; nan where undefined."""
    from ccoma.continual.metrics import auc

    rows = []
    for (method, seed), g in metrics[metrics.key == key].groupby(["method", "seed"], sort=False):
        g = g.sort_values("step")
        s, v = g.step.to_numpy(dtype=float), g.value.to_numpy(dtype=float)
        post = auc(s, v, unseen_from, s[-1]) if unseen_from is not None and unseen_from < s[-1] else math.nan
        tail = v[s >= 0.9 * s[-1]]
        rows.append({"method": method, "mode": g["mode"].iloc[0], "seed": seed,
                     "deployment": auc(s, v, s[0], s[-1]) if len(s) > 1 else float(v[0]),
                     "post_shift": post, "final": float(tail.mean())})
    return pd.DataFrame(rows, columns=["method", "mode", "seed", *SCORES])


def score_dict(scores: pd.DataFrame, column: str) -> dict[str, np.ndarray]:
    """method -> finite scores ``[R, 1]`` (runs x tasks) of one ``run_scores`` column."""
    out = {}
    for method, g in scores.groupby("method", sort=False):
        x = g[column].to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        if len(x):
            out[method] = x[:, None]
    return out


def _aggregate(x: np.ndarray) -> np.ndarray:
    """[..., R, T] -> [3, ...]: IQM, mean and median over all runs and tasks (rliable's aggregates)."""
    from scipy import stats

    flat = x.reshape(*x.shape[:-2], -1)
    return np.stack([stats.trim_mean(flat, 0.25, axis=-1), flat.mean(axis=-1), np.median(flat, axis=-1)])


def _bootstrap(samples: tuple, statistic, reps: int, seed: int, paired: bool = False):
    from scipy import stats

    with warnings.catch_warnings():  # degenerate resamples (all runs equal) warn; the interval is then a point
        warnings.simplefilter("ignore")
        res = stats.bootstrap(samples, statistic, n_resamples=reps, confidence_level=LEVEL, method="percentile",
                              vectorized=True, paired=paired, rng=np.random.default_rng(seed))
    return np.asarray(res.confidence_interval.low), np.asarray(res.confidence_interval.high)


def interval_estimates(scores: Mapping[str, np.ndarray], reps: int = REPS, seed: int = 0) -> pd.DataFrame:
    """IQM, mean, median of each method's ``[R, T]`` scores with 95% stratified-bootstrap intervals.

    Stratified: each task's runs are resampled on their own (scipy resamples each sample
    independently, one sample per task). Columns: method, runs, and for each aggregate ``a``:
    ``a``, ``a_lo``, ``a_hi`` (intervals nan with fewer than 2 runs)."""
    rows = []
    for method, x in scores.items():
        x = np.asarray(x, dtype=float)
        point = _aggregate(x)
        row = {"method": method, "runs": x.shape[0]}
        if x.shape[0] >= 2:
            lo, hi = _bootstrap(tuple(x[:, t] for t in range(x.shape[1])),
                                lambda *cols, axis=-1: _aggregate(np.stack(cols, axis=-1)), reps, seed)
        else:
            lo = hi = np.full(3, math.nan)
        for k, name in enumerate(AGGREGATES):
            row[name], row[f"{name}_lo"], row[f"{name}_hi"] = float(point[k]), float(lo[k]), float(hi[k])
        rows.append(row)
    return pd.DataFrame(rows, columns=["method", "runs", *[f"{a}{s}" for a in AGGREGATES for s in ("", "_lo", "_hi")]])


def _poi(x, y, axis=-1) -> np.ndarray:
    """P(X > Y) + P(X = Y) / 2 = Mann-Whitney U / (n m) along ``axis`` (rliable's definition)."""
    from scipy import stats

    if np.ndim(x) == 1 and np.array_equal(x, y):
        return np.asarray(0.5)
    u = stats.mannwhitneyu(x, y, axis=axis, alternative="greater", method="asymptotic").statistic
    return np.asarray(u) / (np.shape(x)[axis] * np.shape(y)[axis])


def probability_of_improvement(scores: Mapping[str, np.ndarray], target: str = "c-coma", reps: int = REPS,
                               seed: int = 0) -> pd.DataFrame:
    """P(``target`` > other) for every other method, averaged over tasks, with a 95% bootstrap interval
    (both methods' runs resampled independently, within each task). Columns: other, p, lo, hi, runs."""
    rows = []
    if target not in scores:
        return pd.DataFrame(columns=["other", "p", "lo", "hi", "runs"])
    x = np.asarray(scores[target], dtype=float)
    for other, y in scores.items():
        if other == target:
            continue
        y = np.asarray(y, dtype=float)
        tasks = range(x.shape[1])
        p = float(np.mean([_poi(x[:, t], y[:, t]) for t in tasks]))
        lo = hi = math.nan
        if x.shape[0] >= 2 and y.shape[0] >= 2:
            los, his = zip(*(_bootstrap((x[:, t], y[:, t]), _poi, reps, seed) for t in tasks))
            lo, hi = float(np.mean(los)), float(np.mean(his))
        rows.append({"other": other, "p": p, "lo": lo, "hi": hi, "runs": f"{x.shape[0]} vs {y.shape[0]}"})
    return pd.DataFrame(rows, columns=["other", "p", "lo", "hi", "runs"])


def performance_profile(points: Mapping[str, np.ndarray], taus: np.ndarray, reps: int = REPS,
                        seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """method -> (profile ``[len(taus)]``, low, high): the fraction of a run's scores ``[R, K]`` above
    each tau, averaged over runs, with a 95% bootstrap band over runs (nan with one run)."""
    out = {}
    for method, x in points.items():
        frac = (np.asarray(x, dtype=float)[:, :, None] > np.asarray(taus)[None, None, :]).mean(axis=1)  # [R, tau]
        prof = frac.mean(axis=0)
        if frac.shape[0] >= 2:
            lo, hi = _bootstrap((frac,), lambda f, axis=-1: f.mean(axis=axis), reps, seed)
        else:
            lo = hi = np.full(len(taus), math.nan)
        out[method] = (prof, lo, hi)
    return out


def post_shift_points(metrics: pd.DataFrame, unseen_from: int | None, key: str = TEST_KEY) -> dict[str, np.ndarray]:
    """method -> ``[R, K]``: each run's test points at or after ``unseen_from`` (the whole series when
    there is no shift), cut to the shortest run so that every run has K points."""
    sel = metrics[metrics.key == key]
    if unseen_from is not None:
        sel = sel[sel.step >= unseen_from]
    out = {}
    for method, g in sel.groupby("method", sort=False):
        runs = [r.sort_values("step").value.to_numpy(dtype=float) for _, r in g.groupby("seed")]
        k = min(len(r) for r in runs)
        if k:
            out[method] = np.stack([r[:k] for r in runs])
    return out


def mean_ci(values, bounds: tuple[float, float] = (-math.inf, math.inf), reps: int = REPS,
            seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean over runs with a 95% percentile-bootstrap interval over runs
    (within ``bounds`` by construction); low/high nan with fewer than 2 finite values."""
    x = np.asarray([v for v in values if v == v], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    if len(x) < 2:
        return float(x.mean()), math.nan, math.nan
    lo, hi = _bootstrap((x,), lambda s, axis=-1: s.mean(axis=axis), reps, seed)
    return float(x.mean()), max(float(lo), bounds[0]), min(float(hi), bounds[1])


def reliability_note(runs_per_method: Mapping[str, int]) -> str | None:
    """A warning sentence when any method has fewer than MIN_SEEDS runs (None otherwise)."""
    few = {m: n for m, n in runs_per_method.items() if n < MIN_SEEDS}
    if not few:
        return None
    worst = min(few.values())
    return (f"Intervals are unreliable: {len(few)} method(s) have fewer than {MIN_SEEDS} runs (as few as "
            f"{worst}); a bootstrap over so few runs understates the uncertainty. Read them as descriptive.")
