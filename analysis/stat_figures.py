"""Figures of the aggregate statistics (analysis.stats) and of the sampling-vs-adaptation control.

rliable-style: interval estimates as horizontal bars (point and 95% interval per method and
aggregate), probability of improvement intervals, performance profiles with bootstrap bands. All on
the greedy test win rate; the sampling figure sets the online series of C-COMA and of its control
COMA-explore side by side (the same measure), apart from the greedy panel.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.figures import STEP_LABEL, Figure, _plt, _save, _shift_line, _steps, mean_band
from analysis.frame import COLORS, ONLINE, ONLINE_KEY, TEST_KEY, ScenarioData, bounds_of, curves, label
from analysis.stats import AGGREGATES, SCORES

GREEDY = "greedy test win rate"


def aggregates_figure(scenario: str, tables: dict[str, pd.DataFrame], out_dir: Path) -> Figure:
    """Rows: scores (deployment, post-shift); columns: IQM, mean, median; one bar per method."""
    name, title = "aggregates", "Greedy test win rate: IQM, mean and median over runs, 95% bootstrap CIs"
    tables = {k: t for k, t in tables.items() if len(t)}
    if not tables:
        return Figure(name, None, title, ["no greedy test series (deploy/test/win_rate) logged"])
    plt, _ = _plt()
    methods = list(next(iter(tables.values())).method)
    fig, axes = plt.subplots(len(tables), 3, figsize=(12, 0.42 * len(methods) * len(tables) + 1.8),
                             squeeze=False, sharex=True, layout="constrained")
    for r, (score, t) in enumerate(tables.items()):
        t = t.set_index("method").reindex(methods)
        for c, agg in enumerate(AGGREGATES):
            ax = axes[r][c]
            for i, m in enumerate(methods):
                lo, hi, pt = t.loc[m, f"{agg}_lo"], t.loc[m, f"{agg}_hi"], t.loc[m, agg]
                if lo == lo:
                    ax.barh(i, hi - lo, left=lo, height=0.6, color=COLORS.get(m, "0.5"), alpha=0.75)
                ax.plot(pt, i, marker="D", markersize=5, color="black")
            ax.set_yticks(range(len(methods)), [f"{label(m)} (n={int(t.loc[m, 'runs'])})" for m in methods]
                          if c == 0 else [""] * len(methods))
            ax.set_xlim(-0.03, 1.03)
            ax.invert_yaxis()
            ax.set_title(f"{agg.upper() if agg == 'iqm' else agg}: {SCORES[score]}", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel(GREEDY)
    fig.suptitle(f"{scenario}: {title}", fontsize=11)
    return Figure(name, _save(fig, out_dir / f"{name}.png"),
                  f"{title}. Bar: the interval; black diamond: the point estimate.", [])



def poi_figure(scenario: str, tables: dict[str, pd.DataFrame], out_dir: Path) -> Figure:
    """P(C-COMA > X) with 95% intervals, one panel per score."""
    name, title = "probability_of_improvement", "Probability that C-COMA improves on each method"
    tables = {k: t for k, t in tables.items() if len(t)}
    if not tables:
        return Figure(name, None, title, ["needs C-COMA and another method with greedy test series"])
    plt, _ = _plt()
    others = list(next(iter(tables.values())).other)
    fig, axes = plt.subplots(1, len(tables), figsize=(5.5 * len(tables), 0.45 * len(others) + 1.6),
                             squeeze=False, layout="constrained")
    for ax, (score, t) in zip(axes[0], tables.items()):
        t = t.set_index("other").reindex(others)
        for i, m in enumerate(others):
            lo, hi, p = t.loc[m, "lo"], t.loc[m, "hi"], t.loc[m, "p"]
            if lo == lo:
                ax.barh(i, max(hi - lo, 0.01), left=lo, height=0.6, color=COLORS.get(m, "0.5"), alpha=0.75)
            ax.plot(p, i, marker="D", markersize=5, color="black")
        ax.axvline(0.5, color="0.4", linestyle=":", linewidth=1)
        ax.set_yticks(range(len(others)), [f"P(C-COMA > {label(m)})" for m in others], fontsize=9)
        ax.set_xlim(-0.03, 1.03)
        ax.invert_yaxis()
        ax.set_xlabel("probability of improvement")
        ax.set_title(f"{GREEDY}, {SCORES[score]}", fontsize=9)
    fig.suptitle(f"{scenario}: {title}", fontsize=11)
    return Figure(name, _save(fig, out_dir / f"{name}.png"),
                  f"{title}: P(X > Y) over runs (Mann-Whitney U / nm), 95% bootstrap intervals; 0.5 = no "
                  "difference.", [])


def profile_figure(scenario: str, profiles: dict, taus: np.ndarray, out_dir: Path) -> Figure:
    """Performance profiles: fraction of post-shift test points above tau, band = 95% over runs."""
    name, title = "performance_profile", "Performance profile after the shift"
    if not profiles:
        return Figure(name, None, title, ["no greedy test series (deploy/test/win_rate) logged"])
    plt, _ = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.8), layout="constrained")
    for m, (prof, lo, hi) in profiles.items():
        ax.plot(taus, prof, color=COLORS.get(m, "0.5"), label=label(m), linewidth=1.8)
        if np.isfinite(lo).all():
            ax.fill_between(taus, lo, hi, color=COLORS.get(m, "0.5"), alpha=0.15)
    ax.set_xlabel(f"{GREEDY} threshold tau")
    ax.set_ylabel("fraction of test points > tau")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"{scenario}: {title}", fontsize=11)
    return Figure(name, _save(fig, out_dir / f"{name}.png"),
                  f"{title}: for each tau, the fraction of a run's greedy test points after the shift with a "
                  "win rate above tau, averaged over runs; band: 95% bootstrap over runs.", [])


def sampling_figure(data: ScenarioData, out_dir: Path) -> Figure:
    """Left: greedy C-COMA vs frozen COMA (what adaptation changed in the weights); right: online C-COMA
    vs COMA-explore, frozen weights acting with C-COMA's behaviour policy (adaptation at equal sampling)."""
    name = "sampling_vs_adaptation"
    title = "Sampling cost vs adaptation: C-COMA against its controls"
    panels = [(["c-coma", "coma"], TEST_KEY, f"{GREEDY}", "greedy: C-COMA vs frozen COMA"),
              (["c-coma", "coma-explore"], ONLINE_KEY, f"{ONLINE} win rate",
               f"{ONLINE}: C-COMA vs COMA-explore")]
    have = set(data.metrics.method)
    if "c-coma" not in have or not ({"coma", "coma-explore"} & have):
        return Figure(name, None, title, ["needs C-COMA and COMA or COMA-explore runs"])
    plt, _ = _plt()  # the seaborn theme
    from matplotlib.ticker import FuncFormatter

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained")
    for ax, (methods, key, ylabel, sub) in zip(axes, panels):
        df = curves(data.metrics[data.metrics.method.isin(methods)], key)
        for m in methods:
            mine = df[df.method == m]
            if mine.empty:
                ax.plot([], [], color=COLORS.get(m, "0.5"), linestyle=":", label=f"{label(m)}: no runs")
                continue
            for _, run in mine.groupby("seed"):
                ax.plot(run.step, run.value, color=COLORS.get(m, "0.5"), linewidth=0.6, alpha=0.35)
            n = mine.seed.nunique()  # with 2 seeds a t-band spans 12.7 standard errors: only the seeds then
            b = mean_band(mine, bounds_of("win_rate"))
            ax.plot(b.step, b["mean"], color=COLORS.get(m, "0.5"), label=f"{label(m)} (n={n})")
            if n >= 3:
                ax.fill_between(b.step, b.low, b.high, color=COLORS.get(m, "0.5"), alpha=0.15)
        _shift_line(ax, data.unseen_from)
        ax.set_title(sub, fontsize=10)
        ax.set_ylabel(ylabel)
        ax.set_xlabel(STEP_LABEL)
        ax.xaxis.set_major_formatter(FuncFormatter(_steps))
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle(f"{data.scenario}: {title}", fontsize=11)
    return Figure(name, _save(fig, out_dir / f"{name}.png"),
                  f"{title}. Left, greedy for both: the change adaptation made to the weights. Right, the "
                  f"{ONLINE} for both: C-COMA against the same frozen weights sampling with C-COMA's behaviour "
                  "policy, so the gap is adaptation at equal sampling cost. Thick: mean over seeds (band: 95% t-interval, "
                  "with 3+ seeds); thin: single seeds.", [])
