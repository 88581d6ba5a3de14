"""Report figures: one PNG each, seaborn on the Agg backend.

Curves show the mean over seeds with a 95% t-interval band (analysis.frame.ci95_curve_point, per step
in :func:`mean_band`), every seed's
own curve, and a dashed vertical line where unseen situations begin. The paper-style Figures 3-5 read
the greedy test series (``deploy/test/*``, the same measure for every method); the online
behaviour-policy series has its own figure, labelled as such. A figure whose methods have no finished runs is not
drawn; its :class:`Figure` carries the reason instead, and partial figures name what is missing.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.frame import (COLORS, ONLINE, ORDER, ScenarioData, bounds_of, ci95_band, ci95_curve_point, curves,
                            label)

DPI = 120
STEP_LABEL = "deployment env steps (summed over parallel envs)"
# (name, methods, metric key, y label, title) of the paper-style curves
GREEDY_WIN = "greedy test win rate"
CURVES = [
    ("fig3_winrate_frozen", ["c-coma", "coma", "qmix", "vdn"], "deploy/test/win_rate", GREEDY_WIN,
     "Greedy test win rate: continual C-COMA vs frozen COMA, QMIX, VDN (cf. paper Fig. 3)"),
    ("fig4_winrate_continual", ["c-coma", "c-qmix", "c-vdn"], "deploy/test/win_rate", GREEDY_WIN,
     "Greedy test win rate: C-COMA vs C-QMIX, C-VDN (cf. paper Fig. 4)"),
    ("fig5_return_continual", ["c-coma", "c-qmix", "c-vdn"], "deploy/test/return", "greedy test mean return",
     "Greedy test mean return: continual methods (cf. paper Fig. 5)"),
]
ONLINE_CURVE = ("online_winrate", "deploy/win_rate", f"{ONLINE} win rate, last 30 episodes",
                "Online win rate of each method's behaviour policy (last 30 episodes): NOT the greedy measure "
                "of Figs. 3-5")


@dataclasses.dataclass
class Figure:
    name: str
    path: Path | None          # None: not drawn (see notes)
    caption: str
    notes: list[str]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt, sns


def _steps(x, _pos=None) -> str:
    if abs(x) >= 1e6:
        return f"{x / 1e6:g}M"
    if abs(x) >= 1e3:
        return f"{x / 1e3:g}K"
    return f"{x:g}"


def _shift_line(ax, unseen_from: int | None, annotate: bool = True) -> None:
    if unseen_from is None:
        return
    ax.axvline(unseen_from, color="0.25", linestyle="--", linewidth=1.3, zorder=1)
    if annotate:
        ax.annotate("unseen situations begin", xy=(unseen_from, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(5, -5), textcoords="offset points", ha="left", va="top", fontsize=9,
                    color="0.25", bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8})


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _missing(methods: list[str], have: set[str]) -> list[str]:
    return [f"no {label(m)} runs" for m in methods if m not in have]


def mean_band(runs: pd.DataFrame, bounds: tuple[float, float]) -> pd.DataFrame:
    """Per step of ``runs`` (columns step, value; a row per seed): the mean over seeds and its 95%
    t-interval clipped to ``bounds`` (:func:`analysis.frame.ci95_curve_point`, the interval seaborn's
    ``errorbar=`` callable drew). Columns step, mean, low, high, by step. Computed here rather than
    through seaborn, whose per-point callable machinery cost ~0.4 ms a point (4,200 points a report)."""
    rows = [(step, *ci95_curve_point(values.to_numpy(), bounds)) for step, values in runs.groupby("step").value]
    return pd.DataFrame(rows, columns=["step", "mean", "low", "high"])


def line_figure(data: ScenarioData, name: str, methods: list[str], key: str, ylabel: str, title: str,
                out_dir: Path) -> Figure:
    """``key`` along deployment: the methods' means overlaid (the paper's view), and under it one
    panel per method with its mean, the 95% band over seeds and every seed's own curve.

    The overlay carries the bands only with 3+ seeds: with 2 the t-interval spans 12.7 standard
    errors and overlapping bands of four methods hide the curves; the panels always carry them.
    """
    sel = data.metrics[data.metrics.method.isin(methods)]
    df = curves(sel, key)
    have = set(df.method)
    notes = _missing(methods, have)
    present = [m for m in methods if m in have]
    if not present:
        return Figure(name, None, title, notes or [f"no {key} data"])
    plt, _ = _plt()  # the seaborn theme
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    seeds = df.groupby("method").seed.nunique()
    bands = {m: mean_band(df[df.method == m], bounds_of(key)) for m in present}
    fig = plt.figure(figsize=(11, 8.2), layout="constrained")
    grid = fig.add_gridspec(2, len(methods), height_ratios=[1.6, 1])
    top = fig.add_subplot(grid[0, :])
    for m in present:
        b, colour = bands[m], COLORS.get(m, "0.5")
        top.plot(b.step, b["mean"], color=colour, linewidth=1.8, label=f"{label(m)} (n={seeds[m]})")
        if seeds.min() >= 3:
            top.fill_between(b.step, b.low, b.high, color=colour, alpha=0.12)
    handles, texts = top.get_legend_handles_labels()
    for m in methods:  # the picture alone must not suggest a missing method was compared
        if m not in have:
            handles.append(Line2D([], [], color=COLORS.get(m, "0.5"), linestyle=":", alpha=0.6))
            texts.append(f"{label(m)}: no runs")
    top.legend(handles, texts, title="method (seeds)", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9,
               title_fontsize=9)
    top.set_title(f"{data.scenario}: {title}", fontsize=11)
    top.set_ylabel(ylabel)
    panels = [top]
    for i, m in enumerate(methods):
        ax = fig.add_subplot(grid[1, i], sharey=top)  # x not shared: the panels need fewer ticks
        panels.append(ax)
        ax.set_title(f"{label(m)} (n={seeds.get(m, 0)})", fontsize=10, color=COLORS.get(m, "0.3"))
        ax.set_ylabel(ylabel if i == 0 else "", fontsize=9)
        if i:
            ax.tick_params(labelleft=False)
        if m not in have:
            ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center", va="center", color="0.4")
            continue
        colour = COLORS.get(m, "0.5")
        for _, run in df[df.method == m].groupby("seed"):
            ax.plot(run.step, run.value, color=colour, linewidth=0.7, alpha=0.45)
        b = bands[m]
        ax.fill_between(b.step, b.low, b.high, color=colour, alpha=0.2)
        ax.plot(b.step, b["mean"], color=colour, linewidth=1.6)
    from matplotlib.ticker import MaxNLocator

    for ax in panels:
        _shift_line(ax, data.unseen_from, annotate=ax is top)
        ax.xaxis.set_major_formatter(FuncFormatter(_steps))
        ax.set_xlabel(STEP_LABEL if ax is top else "")
        if ax is not top:
            ax.set_xlim(top.get_xlim())
            ax.xaxis.set_major_locator(MaxNLocator(3))
            ax.tick_params(labelsize=8)
    if "win_rate" in key:
        top.set_ylim(0, 1.05)
    else:
        top.set_ylim(bottom=0)
    fig.text(0.5, -0.01, "lower panels: thick = mean over seeds, shaded = 95% t-interval over seeds "
             "(clipped to the metric's range), thin = one seed", ha="center", fontsize=9, color="0.3")
    caption = (f"{title}. Top: mean over seeds per method"
               + (", band = 95% t-interval over seeds" if seeds.min() >= 3 else
                  " (bands only in the panels below: with fewer than 3 seeds they are too wide to overlay)")
               + ". Below: each method alone, with its 95% band and every seed's curve.")
    return Figure(name, _save(fig, out_dir / f"{name}.png"), caption, notes)


def online_figure(data: ScenarioData, out_dir: Path) -> Figure:
    """Every method's online (behaviour-policy) win rate on one axis: mean over seeds, thin seeds."""
    name, key, ylabel, title = ONLINE_CURVE
    df = curves(data.metrics, key)
    if df.empty:
        return Figure(name, None, title, [f"no {key} data"])
    plt, _ = _plt()
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(11, 5), layout="constrained")
    for m in [m for m in data.methods() if m in set(df.method)]:
        mine = df[df.method == m]
        for _, run in mine.groupby("seed"):
            ax.plot(run.step, run.value, color=COLORS.get(m, "0.5"), linewidth=0.5, alpha=0.3)
        mean = mine.groupby("step").value.mean()
        ax.plot(mean.index, mean.values, color=COLORS.get(m, "0.5"), linewidth=1.8,
                label=f"{label(m)} (n={mine.seed.nunique()})")
    _shift_line(ax, data.unseen_from)
    ax.xaxis.set_major_formatter(FuncFormatter(_steps))
    ax.set_xlabel(STEP_LABEL)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{data.scenario}: {title}", fontsize=11)
    ax.legend(title="method (seeds)", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, title_fontsize=9)
    return Figure(name, _save(fig, out_dir / f"{name}.png"),
                  f"{title}. Thick: mean over seeds; thin: single seeds.", [])


def forgetting_recovery(data: ScenarioData, per_run: pd.DataFrame, out_dir: Path) -> Figure:
    """Bars: forgetting (cl/forgetting, mean over phases) and recovery steps per method."""
    name, title = "forgetting_recovery", "Forgetting and recovery time per method"
    if per_run.empty or (per_run.forgetting.isna().all() and not per_run.recovered.any()):
        return Figure(name, None, title, ["no cl/forgetting or cl/recovery_steps metrics logged"])
    plt, sns = _plt()
    order = [m for m in ORDER if m in set(per_run.method)] + sorted(set(per_run.method) - set(ORDER))
    labels = [label(m) for m in order]
    df = per_run.assign(Method=per_run.method.map(label))
    palette = {label(m): COLORS.get(m, "0.5") for m in order}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    sns.barplot(data=df, x="Method", y="forgetting", order=labels, hue="Method", palette=palette,
                errorbar=functools.partial(ci95_band, bounds=bounds_of("forgetting")), capsize=0.2, ax=ax1,
                legend=False)
    ax1.set_ylabel("forgetting (win rate, mean over earlier phases)")
    ax1.set_title("Forgetting (higher = more forgotten)", fontsize=11)
    rec = df[df.recovered]
    sns.barplot(data=rec, x="Method", y="recovery_steps", order=labels, hue="Method", palette=palette,
                errorbar=functools.partial(ci95_band, bounds=bounds_of("recovery_steps")), capsize=0.2, ax=ax2,
                legend=False)
    from matplotlib.ticker import FuncFormatter

    ax2.yaxis.set_major_formatter(FuncFormatter(_steps))
    ax2.set_ylabel("env steps after the shift to recover")
    ax2.set_title("Recovery time (runs that recovered)", fontsize=11)
    ax2.set_ylim(bottom=0)
    # how many runs recovered, under each name: a missing bar then reads "0/2", not "no data"
    ax2.set_xticks(range(len(order)), [f"{label(m)}\n{int(df[df.method == m].recovered.sum())}/"
                                       f"{int((df.method == m).sum())}" for m in order], fontsize=9)
    ax1.tick_params(axis="x", labelsize=9)
    ax1.set_xlabel("")
    ax2.set_xlabel("method (runs recovered / runs)")
    fig.suptitle(f"{data.scenario}: {title}", fontsize=12)
    fig.tight_layout()
    return Figure(name, _save(fig, out_dir / f"{name}.png"),
                  f"{title}. Bars: mean over seeds; whiskers: 95% t-interval.", [])


def performance_matrix(data: ScenarioData, out_dir: Path) -> Figure:
    """Heatmaps of eval/<phase>/win_rate: phase x evaluation step, one panel per method."""
    name, title = "performance_matrix", "Performance matrix: greedy evaluation win rate per phase"
    ev = data.metrics[(data.metrics.namespace == "eval") & (data.metrics.metric == "win_rate")]
    if ev.empty:
        return Figure(name, None, title, ["no eval/<phase>/win_rate metrics logged"])
    plt, _ = _plt()
    methods = [m for m in data.methods() if m in set(ev.method)]
    cols = min(3, len(methods))
    rows = math.ceil(len(methods) / cols)
    phases = sorted(set(ev.phase))
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols + 2.0, (0.55 * len(phases) + 1.4) * rows + 0.6),
                             squeeze=False, layout="constrained")
    for i, (ax, m) in enumerate(zip(axes.flat, methods)):
        mat = ev[ev.method == m].pivot_table(index="phase", columns="step", values="value", aggfunc="mean")
        mat = mat.reindex(phases)
        mat.columns = [_steps(c) for c in mat.columns]
        _heatmap(ax, mat, "viridis")
        ax.set_title(f"{label(m)} (n={ev[ev.method == m].seed.nunique()})", fontsize=10)
        # labels only on the outer edge: inner ones would collide with the neighbouring panels
        below = i + cols < len(methods)
        ax.set_xlabel("" if below else "deployment step of evaluation")
        ax.set_ylabel("evaluated phase" if i % cols == 0 else "")
        if i % cols:
            ax.set_yticklabels([])
        ax.tick_params(axis="y", labelrotation=0)
    for ax in list(axes.flat)[len(methods):]:
        ax.set_visible(False)
    import matplotlib as mpl

    fig.colorbar(mpl.cm.ScalarMappable(norm=mpl.colors.Normalize(0, 1), cmap="viridis"),
                 ax=axes.ravel().tolist(), label="win rate (mean over seeds)", shrink=0.8)
    fig.suptitle(f"{data.scenario}: {title} (step 0 = end of training)", fontsize=12)
    return Figure(name, _save(fig, out_dir / f"{name}.png"),
                  f"{title}; rows: the phase whose situations were evaluated, columns: when.", [])


def _heatmap(ax, mat: pd.DataFrame, cmap: str) -> None:
    """A 0-1 heatmap of ``mat`` (rows top to bottom, one tick label per row and column), each cell
    labelled with its value to 2 decimals, dark on light cells and white on dark ones (seaborn's rule:
    relative luminance > 0.408). Drawn with pcolormesh: seaborn's heatmap draws the whole figure once
    per panel to check its tick labels for overlap (~0.35 s a panel, most of the figure's time)."""
    import matplotlib as mpl

    values = mat.to_numpy(dtype=float)  # [rows, cols]
    rows, cols = values.shape
    ax.pcolormesh(np.ma.masked_invalid(values), cmap=cmap, vmin=0, vmax=1, edgecolors="white", linewidth=0.5)
    ax.set_xlim(0, cols)
    ax.set_ylim(rows, 0)
    ax.set_xticks(np.arange(cols) + 0.5, [str(c) for c in mat.columns])
    ax.set_yticks(np.arange(rows) + 0.5, [str(r) for r in mat.index])
    for spine in ax.spines.values():
        spine.set_visible(False)
    colors = mpl.colormaps[cmap](np.clip(np.nan_to_num(values), 0, 1))[..., :3]  # [rows, cols, 3]
    linear = np.where(colors <= 0.03928, colors / 12.92, ((colors + 0.055) / 1.055) ** 2.4)
    luminance = linear @ np.array([0.2126, 0.7152, 0.0722])
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j + 0.5, i + 0.5, f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color=".15" if luminance[i, j] > 0.408 else "w")


def cross_scenario(tables: dict[str, pd.DataFrame], out_dir: Path) -> Figure:
    """Final win rate per method, one bar group per scenario (only with 2+ scenarios)."""
    name, title = "cross_scenario_final", "Final deployment win rate per scenario"
    frames = [t.assign(scenario=s) for s, t in tables.items() if len(t)]
    if len(frames) < 2:
        return Figure(name, None, title, ["fewer than two scenarios with finished runs"])
    plt, sns = _plt()
    df = pd.concat(frames, ignore_index=True)
    df["Method"] = df.method.map(label)
    fig, ax = plt.subplots(figsize=(10, 5))
    sns.barplot(data=df, x="Method", y="final", hue="scenario", ax=ax, errorbar=None)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("final win rate (mean over seeds)")
    ax.set_xlabel("")
    ax.set_title(title, fontsize=11)
    ax.legend(title="scenario", fontsize=9)
    return Figure(name, _save(fig, out_dir / f"{name}.png"), f"{title} (means; intervals in the table).", [])


def scenario_figures(data: ScenarioData, per_run: pd.DataFrame, out_dir: Path) -> list[Figure]:
    """Every per-scenario figure, in report order."""
    out_dir = Path(out_dir)
    figs = [line_figure(data, name, methods, key, ylabel, title, out_dir)
            for name, methods, key, ylabel, title in CURVES]
    figs.append(online_figure(data, out_dir))
    figs.append(forgetting_recovery(data, per_run, out_dir))
    figs.append(performance_matrix(data, out_dir))
    return figs

