"""Report figures: one PNG each, seaborn on the Agg backend.

Curves show the mean over seeds with a 95% t-interval band (analysis.frame.ci95_band) and a dashed
vertical line where unseen situations begin. A figure whose methods have no finished runs is not
drawn; its :class:`Figure` carries the reason instead, and partial figures name what is missing.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd

from analysis.frame import COLORS, ScenarioData, ci95_band, curves, label

DPI = 120
STEP_LABEL = "deployment env steps (summed over parallel envs)"
# (name, methods, metric key, y label, title) of the paper-style curves
CURVES = [
    ("fig3_winrate_frozen", ["c-coma", "coma", "qmix", "vdn"], "deploy/win_rate",
     "win rate (last 30 episodes)", "Win rate: continual C-COMA vs frozen COMA, QMIX, VDN (cf. paper Fig. 3)"),
    ("fig4_winrate_continual", ["c-coma", "c-qmix", "c-vdn"], "deploy/win_rate",
     "win rate (last 30 episodes)", "Win rate: C-COMA vs C-QMIX, C-VDN (cf. paper Fig. 4)"),
    ("fig5_return_continual", ["c-coma", "c-qmix", "c-vdn"], "deploy/return",
     "mean episode return (last 30 episodes)", "Mean return: continual methods (cf. paper Fig. 5)"),
]


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


def _shift_line(ax, unseen_from: int | None) -> None:
    if unseen_from is None:
        return
    ax.axvline(unseen_from, color="0.25", linestyle="--", linewidth=1.3, zorder=1)
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


def line_figure(data: ScenarioData, name: str, methods: list[str], key: str, ylabel: str, title: str,
                out_dir: Path) -> Figure:
    """Mean curve and 95% band over seeds of ``key`` along deployment, one line per method."""
    sel = data.metrics[data.metrics.method.isin(methods)]
    df = curves(sel, key)
    have = set(df.method)
    notes = _missing(methods, have)
    present = [m for m in methods if m in have]
    if not present:
        return Figure(name, None, title, notes or [f"no {key} data"])
    plt, sns = _plt()
    seeds = df.groupby("method").seed.nunique()
    names = {m: f"{label(m)} (n={seeds[m]})" for m in present}
    df = df.assign(Method=df.method.map(names))
    fig, ax = plt.subplots(figsize=(9, 5))
    sns.lineplot(data=df, x="step", y="value", hue="Method", hue_order=[names[m] for m in present],
                 palette={names[m]: COLORS.get(m, "0.5") for m in present}, errorbar=ci95_band, ax=ax,
                 linewidth=1.8, err_kws={"alpha": 0.12})
    _shift_line(ax, data.unseen_from)
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(_steps))
    ax.set_xlabel(STEP_LABEL)
    ax.set_ylabel(ylabel)
    if "win_rate" in key:
        ax.set_ylim(0, 1.05)
    ax.set_title(f"{data.scenario}: {title}", fontsize=11)
    handles, texts = ax.get_legend_handles_labels()
    from matplotlib.lines import Line2D

    for m in methods:  # the picture alone must not suggest a missing method was compared
        if m not in have:
            handles.append(Line2D([], [], color=COLORS.get(m, "0.5"), linestyle=":", alpha=0.6))
            texts.append(f"{label(m)}: no runs")
    ax.legend(handles, texts, title="method (seeds)", loc="lower left", fontsize=9, title_fontsize=9,
              framealpha=0.9)
    caption = f"{title}. Mean over seeds, band = 95% t-interval over seeds."
    if seeds.min() < 3:
        caption += " With fewer than 3 seeds the intervals are wide (or absent for 1 seed)."
    return Figure(name, _save(fig, out_dir / f"{name}.png"), caption, notes)


def forgetting_recovery(data: ScenarioData, per_run: pd.DataFrame, out_dir: Path) -> Figure:
    """Bars: forgetting (cl/forgetting, mean over phases) and recovery steps per method."""
    name, title = "forgetting_recovery", "Forgetting and recovery time per method"
    if per_run.empty or (per_run.forgetting.isna().all() and not per_run.recovered.any()):
        return Figure(name, None, title, ["no cl/forgetting or cl/recovery_steps metrics logged"])
    plt, sns = _plt()
    order = [m for m in dict.fromkeys(per_run.method)]
    labels = [label(m) for m in order]
    df = per_run.assign(Method=per_run.method.map(label))
    palette = {label(m): COLORS.get(m, "0.5") for m in order}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    sns.barplot(data=df, x="Method", y="forgetting", order=labels, hue="Method", palette=palette,
                errorbar=ci95_band, capsize=0.2, ax=ax1, legend=False)
    ax1.set_ylabel("forgetting (win rate, mean over earlier phases)")
    ax1.set_title("Forgetting (higher = more forgotten)", fontsize=11)
    rec = df[df.recovered]
    sns.barplot(data=rec, x="Method", y="recovery_steps", order=labels, hue="Method", palette=palette,
                errorbar=ci95_band, capsize=0.2, ax=ax2, legend=False)
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
    plt, sns = _plt()
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
        sns.heatmap(mat, vmin=0, vmax=1, cmap="viridis", annot=True, fmt=".2f", cbar=False, ax=ax,
                    annot_kws={"fontsize": 8}, linewidths=0.5)
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
    figs.append(forgetting_recovery(data, per_run, out_dir))
    figs.append(performance_matrix(data, out_dir))
    return figs

