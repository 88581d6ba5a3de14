"""A scenario's timeline as a picture: phase mixture, enemy composition and spawn situations over steps.

Input is :meth:`ccoma.scenarios.Scenario.timeline` for each stage (plain tensors and labels), so this
module knows nothing about scenario files. matplotlib is imported lazily with the Agg backend.
"""
from __future__ import annotations

from pathlib import Path


def _steps_formatter():
    from matplotlib.ticker import FuncFormatter

    def fmt(x, _pos):
        if abs(x) >= 1e6:
            return f"{x / 1e6:g}M"
        if abs(x) >= 1e3:
            return f"{x / 1e3:g}K"
        return f"{x:g}"
    return FuncFormatter(fmt)


def _short_keys(keys):
    """'west->east' -> 'east' when every site key starts from the same agent site."""
    starts = {k.split("->")[0] for k in keys if "->" in k}
    if len(starts) == 1:
        return [k.split("->", 1)[1] if "->" in k else k for k in keys]
    return list(keys)


def _stack(ax, steps, shares, labels, colors):
    keep = [i for i in range(shares.shape[1]) if float(shares[:, i].max()) > 1e-9]
    ax.stackplot(steps, *[shares[:, i] for i in keep], labels=[labels[i] for i in keep],
                 colors=[colors[i % len(colors)] for i in keep], alpha=0.85, step="post")
    ax.set_ylim(0, 1)
    ax.set_xlim(steps[0], steps[-1])


def plot_timeline(timelines: list[dict], path: str | Path, title: str = "", subtitle: str = "") -> Path:
    """Draw one column per stage, rows: phases, enemy unit types, start situations. Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    rows = [("phases", "phase_names", "phase mixture"), ("enemy_types", "unit_types", "enemy unit types"),
            ("starts", "start_keys", "enemy start")]
    fig, axes = plt.subplots(len(rows), len(timelines), figsize=(6.5 * len(timelines) + 2.5, 7.5),
                             squeeze=False, sharey=True)
    for col, tl in enumerate(timelines):
        steps = tl["steps"].numpy()
        for row, (key, names_key, ylabel) in enumerate(rows):
            ax = axes[row][col]
            labels = list(tl[names_key]) if names_key != "start_keys" else _short_keys(tl[names_key])
            palette = sns.color_palette("tab10" if len(labels) <= 10 else "tab20", len(labels))
            _stack(ax, steps, tl[key].numpy(), labels, palette)
            for b in tl["segments"][1:]:
                ax.axvline(b.start, color="0.25", lw=0.8, ls=":")
            if tl.get("unseen_from") is not None:
                ax.axvline(tl["unseen_from"], color="crimson", lw=1.6, ls="--",
                           label="unseen from" if row == 0 else None)
            ax.xaxis.set_major_formatter(_steps_formatter())
            if col == 0:
                ax.set_ylabel(f"{ylabel}\n(share of episodes)" if row != 1 else f"{ylabel}\n(share of enemies)")
            if row == 0:
                ax.set_title(f"{tl['stage']} stage")
            if row == len(rows) - 1:
                ax.set_xlabel("environment steps in the stage")
            if col == len(timelines) - 1:
                ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=13, fontweight="bold", x=0.02, ha="left")
    if subtitle:
        fig.text(0.02, 0.935, subtitle, fontsize=8.5, ha="left", va="top", wrap=True)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
