"""The evaluation report: setup, result table with intervals, figures, the paper comparison, renders.

``build_report(scenarios, tracking_uri, output, fmt)`` reads whatever MLflow holds (through
ccoma.tracking), writes ``report.md`` and/or a self-contained ``report.html`` plus ``figures/`` into
``output``, logs them to each scenario's evaluate run, and returns the report paths. ``output`` is a
folder ccoma owns (marked by a ``.ccoma-report`` file): the report is built in a fresh folder next to
it and renamed into place, and a folder holding anything else is refused, never emptied. Missing or
partial data (no experiment, no runs, a method without finished seeds, crashed runs) is reported in
words instead of being drawn.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Iterable

import pandas as pd

from analysis import figures as figs
from analysis import paper
from analysis import sections
from analysis.document import Doc, to_html, to_markdown
from analysis.frame import ORDER, ScenarioData, label, load, method_table, run_summary
from ccoma.errors import CcomaError, excerpt

PAPER_METHODS = ["c-coma", "coma", "qmix", "vdn", "c-qmix", "c-vdn"]
STEP_CONVENTION = ("A step is one agent-decision step of all environments counted per environment, i.e. "
                   "env steps summed over parallel envs, as in pymarl's t_env.")
IMAGE_SUFFIXES = (".png", ".gif", ".jpg", ".jpeg")
MAX_RENDERS = 8


def _fmt(mean, lo, hi, seeds: int) -> str:
    if mean != mean:
        return "-"
    if lo != lo:
        return f"{mean:.2f} ({seeds} seed)"
    return f"{mean:.2f} [{lo:.2f}, {hi:.2f}]"


def _results_table(per_run: pd.DataFrame, table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = ["method", "mode", "seeds", "pre-shift", "post-shift low", "final", "recovered", "forgetting"]
    rows = []
    for r in table.to_dict("records"):
        g = per_run[per_run.method == r["method"]]
        forget = g.forgetting.mean()
        rows.append([label(r["method"]), r["mode"], r["seeds"],
                     _fmt(r["pre"], r["pre_lo"], r["pre_hi"], r["seeds"]),
                     _fmt(r["low"], r["low_lo"], r["low_hi"], r["seeds"]),
                     _fmt(r["final"], r["final_lo"], r["final_hi"], r["seeds"]),
                     f"{int(g.recovered.sum())}/{len(g)}", "-" if forget != forget else f"{forget:.2f}"])
    return header, rows


def _setup(doc: Doc, data: ScenarioData, uri: str) -> None:
    p = data.parent
    runs = data.runs
    seeds = {m: sorted(int(s) for s in runs.seed[(runs.method == m) & (runs.status == "finished")])
             for m in dict.fromkeys(runs.method)}
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(p["start_time"] / 1000)) if p["start_time"] else "?"
    doc.add("list", items=[
        f"Scenario: {data.scenario}",
        f"Backend: {p['backend'] or 'unknown (no ccoma.backend tag)'}",
        f"Budget: {p['budget'] or '?'}; training {_n(p['train_steps'])} steps, deployment "
        f"{_n(p['deploy_steps'])} steps; unseen situations begin at deployment step {_n(data.unseen_from)}",
        "Seeds (finished runs): " + ("; ".join(f"{label(m)} {', '.join(map(str, s)) or 'none'}"
                                                for m, s in seeds.items()) or "none"),
        f"Step counting: {STEP_CONVENTION}",
        f"Source: evaluate run {p['run_id']} (status {p['status']}, started {started}), the most recent "
        f"of experiment ccoma/{data.scenario} in {uri}",
    ])


def _n(v) -> str:
    return "?" if v is None or pd.isna(v) else f"{int(v):,}"


def _missing(doc: Doc, data: ScenarioData) -> None:
    have = set(data.metrics.method)
    items = [f"no {label(m)} runs" + (" (only unfinished runs)" if m in set(data.runs.method) else "")
             for m in PAPER_METHODS if m not in have]
    for r in data.excluded.to_dict("records"):
        why = "in progress, or crashed without reporting" if r["status"] == "running" else r["status"]
        items.append(f"{label(r['method'])} seed {r['seed']}: status {why}; not used in tables or figures")
    if items:
        doc.add("h3", "Missing or partial runs").add("list", items=items)


def _renders(doc: Doc, data: ScenarioData, tracker, out: Path) -> None:
    doc.add("h3", "Battle renders (cf. paper Figs. 6 and 7)")
    found = []
    runs = data.runs.assign(order=data.runs.method.map({m: i for i, m in enumerate(ORDER)}).fillna(99))
    for r in runs.sort_values(["order", "seed"]).to_dict("records"):
        dst = out / "renders" / data.scenario / f"{r['method']}-seed{r['seed']}"
        got = tracker.download_artifacts(r["run_id"], "renders", dst)
        if got is None:
            continue
        for f in sorted((p for p in dst.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES), key=_render_order):
            found.append((f, f"{label(r['method'])} seed {r['seed']}: {f.stem.replace('_', ' ')}"))
    if not found:
        doc.add("note", "No rendered battle frames were logged for this scenario (artifact path renders/ "
                        "of the method runs is empty), so none are shown.")
        return
    doc.add("p", f"{len(found)} image(s) logged under renders/ of the method runs"
                 + (f"; showing the first {MAX_RENDERS}." if len(found) > MAX_RENDERS else "."))
    doc.add("images", items=found[:MAX_RENDERS])


def _render_order(path: Path) -> tuple:
    name = path.stem.lower()  # "before" frames first, then "after", then the rest, by name
    return (0 if "before" in name else 1 if "after" in name else 2, name)


def _scenario_section(doc: Doc, data: ScenarioData, tracker, out: Path) -> pd.DataFrame:
    """Append one scenario's section; returns its per-method table (empty when nothing is usable)."""
    doc.add("h2", f"Scenario {data.scenario}")
    if not data.has_experiment:
        doc.add("note", f"No experiment ccoma/{data.scenario} in {tracker.uri}: nothing was tracked for this "
                        f"scenario. Run `ccoma evaluate --scenario {data.scenario}` first.")
        return pd.DataFrame()
    if data.parent is None:
        doc.add("note", f"Experiment ccoma/{data.scenario} exists but holds no evaluate runs.")
        return pd.DataFrame()
    _setup(doc, data, tracker.uri)
    skipped = [f"{rid} ({status})" for rid, (scn, status) in getattr(tracker, "skipped_parents", {}).items()
               if scn == data.scenario]
    if skipped:
        doc.add("note", f"Skipped {len(skipped)} newer evaluate run(s) that failed, were interrupted or never "
                        f"finished: {', '.join(skipped)}.")
    _missing(doc, data)
    sections.budgets(doc, data)
    per_run = run_summary(data)
    table = method_table(per_run)
    if table.empty:
        doc.add("note", "No finished method runs with a greedy test win rate (deploy/test/win_rate): no table, "
                        "figures or comparison.")
        _renders(doc, data, tracker, out)
        return table
    doc.add("h3", "Greedy test win rate (the headline)")
    header, rows = _results_table(per_run, table)
    doc.add("p", "Every method acting greedily on the same test episodes at fixed deployment intervals (pymarl's "
                 "test win rate). Mean over seeds with a 95% bootstrap interval over seeds. Pre-shift: mean over "
                 "the last 20% of the steps before unseen situations begin; post-shift low: minimum (first half of the "
                 "post-shift period, smoothed over 5 test points); final: mean over the last 10% of "
                 "deployment. Recovered: runs whose greedy win rate regained 80% of its pre-shift terminal level for "
                 "3 test points in a row after every shift (cl/recovery_steps).")
    doc.add("table", header=header, items=rows)
    fig_dir = out / "figures" / data.scenario
    drawn = sections.statistics(doc, data, fig_dir)
    sections.continual(doc, data)
    drawn += sections.sampling(doc, data, fig_dir)
    sections.online_table(doc, data)
    doc.add("h3", "Figures")
    for f in figs.scenario_figures(data, per_run, fig_dir) + drawn:
        if f.path is None:
            doc.add("note", f"{f.caption}: not drawn ({'; '.join(f.notes)}).")
            continue
        doc.add("figure", f.caption + (f" Missing: {'; '.join(f.notes)}." if f.notes else ""), path=f.path)
    _comparison(doc, table)
    _renders(doc, data, tracker, out)
    return table


def _comparison(doc: Doc, table: pd.DataFrame) -> None:
    checks = paper.compare(table)
    doc.add("h3", "Comparison with the paper's reported shape")
    measurable = [c for c in checks if c.verdict != "not measurable"]
    agree = sum(c.verdict == "agrees" for c in measurable)
    doc.add("p", f"Our results agree with {agree} of {len(measurable)} measurable claims of the C-COMA paper "
                 f"(section 5.2, Figs. 3-5), judged on the greedy test win rate. {paper.DEFINITIONS}")
    doc.add("table", header=["paper reports", "ours", "from our data"],
            items=[[c.claim, c.verdict, c.detail] for c in checks])


def _cross(doc: Doc, tables: dict[str, pd.DataFrame], out: Path) -> None:
    usable = {s: t for s, t in tables.items() if len(t)}
    doc.add("h2", "Across scenarios")
    if len(usable) < 2:
        doc.add("note", "Fewer than two scenarios have finished runs: no cross-scenario comparison.")
        return
    methods = [m for m in ORDER if any(m in set(t.method) for t in usable.values())]
    rows = []
    for m in methods:
        row = [label(m)]
        for t in usable.values():
            r = t[t.method == m]
            row.append("-" if r.empty else _fmt(r.final.iloc[0], r.final_lo.iloc[0], r.final_hi.iloc[0],
                                                int(r.seeds.iloc[0])))
        rows.append(row)
    doc.add("table", header=["final win rate", *usable], items=rows)
    f = figs.cross_scenario(usable, out / "figures")
    if f.path is not None:
        doc.add("figure", f.caption, path=f.path)


def _banner(datas: dict[str, ScenarioData]) -> str:
    backends = sorted({d.parent["backend"] for d in datas.values() if d.parent and d.parent["backend"]})
    if backends and all(b.startswith("ccoma-sim") for b in backends):
        return (f"These figures come from the ccoma simulator ({', '.join(backends)}), not StarCraft II: "
                "the numbers are not the paper's numbers, only its shape can be compared.")
    return (f"These figures come from backend {', '.join(backends) or 'unknown'}; the C-COMA paper's numbers "
            "come from StarCraft II and are not reproduced here, only its shape can be compared.")


def build_report(scenarios: str | Iterable[str], tracking_uri: str | None = None,
                 output: str | Path | None = None, fmt: str = "both", log_to_mlflow: bool = True) -> list[Path]:
    """Write the report for ``scenarios`` into ``output`` (default reports/<a>+<b>); return its paths."""
    from ccoma.scenarios import scenario_id
    from ccoma.tracking import Tracker

    scenarios = [scenarios] if isinstance(scenarios, str) else scenarios
    scenarios = list(dict.fromkeys(scenario_id(s) for s in scenarios))  # a path names its file's stem
    if not scenarios:
        raise CcomaError("report: name at least one --scenario")
    if fmt not in ("md", "html", "both"):
        raise CcomaError(f"report: --format must be md, html or both, not {excerpt(fmt)}")
    out = Path(output) if output else Path("reports") / "+".join(folder_name(s) for s in scenarios)
    _check_owned(out)
    tracker = Tracker(tracking_uri)
    final, out = out, _staging(out)
    try:
        paths, datas = _write(scenarios, tracker, out, fmt)
        _swap(out, final)
    finally:
        shutil.rmtree(out, ignore_errors=True)  # only ever our own staging folder
    paths = [final / p.name for p in paths]
    if log_to_mlflow:
        _log(tracker, datas, final, paths)
    return paths


def _write(scenarios: list[str], tracker, out: Path, fmt: str) -> tuple[list[Path], dict[str, ScenarioData]]:
    datas = load(scenarios, tracker=tracker)
    title = f"ccoma report: {', '.join(scenarios)}"
    doc = Doc().add("h1", title).add("banner", _banner(datas))
    doc.add("p", f"Generated {time.strftime('%Y-%m-%d %H:%M')} from {tracker.uri}.")
    tables = {s: _scenario_section(doc, datas[s], tracker, out) for s in scenarios}
    if len(scenarios) > 1:
        _cross(doc, tables, out)
    paths = []
    if fmt in ("md", "both"):
        paths.append(out / "report.md")
        paths[-1].write_text(to_markdown(doc, out))
    if fmt in ("html", "both"):
        paths.append(out / "report.html")
        paths[-1].write_text(to_html(doc, title))
    return paths, datas


# ---- the output folder: ccoma writes only into folders it owns, and replaces them whole ---------------
OWNER_MARK = ".ccoma-report"  # present in every report folder ccoma wrote


def folder_name(scenario: str) -> str:
    """A scenario name or path as one safe folder name (``/x/my.yaml`` -> ``my``)."""
    stem = Path(scenario).stem if scenario.endswith((".yaml", ".yml")) else scenario
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", stem).strip(".") or "scenario"


def _check_owned(out: Path) -> None:
    """Refuse (one line, nothing touched) a folder that holds anything ccoma did not write."""
    if out.exists() and not out.is_dir():
        raise CcomaError(f"report --output {out}: is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / OWNER_MARK).is_file():
        raise CcomaError(f"report --output {out}: the folder holds files ccoma did not write; "
                         f"give a new or empty folder (ccoma replaces its report folders whole)")


def _staging(out: Path) -> Path:
    """A fresh folder next to ``out`` to build the report in (same file system: the swap is a rename)."""
    import tempfile

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
        (staging / OWNER_MARK).write_text("written by ccoma report; this folder is replaced on every rebuild\n")
    except OSError as exc:
        raise CcomaError(f"report --output {out}: cannot write there ({exc.strerror})") from None
    return staging


def _swap(staging: Path, out: Path) -> None:
    """Put the finished report in place of ``out`` (a ccoma-owned or absent folder), by renames."""
    _check_owned(out)  # again: the folder could have changed while the report was built
    import tempfile

    old = None
    try:
        if out.exists():  # renamed over a fresh empty folder of ours, then deleted
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old)
        os.replace(staging, out)
    except OSError as exc:
        raise CcomaError(f"report --output {out}: cannot replace the folder ({exc.strerror})") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _log(tracker, datas: dict[str, ScenarioData], out: Path, paths: list[Path]) -> None:
    """Figures and report files become artifacts of each scenario's evaluate run."""
    for s, data in datas.items():
        if data.parent is None:
            continue
        if (out / "figures" / s).is_dir():
            tracker.log_artifact(data.parent["run_id"], out / "figures" / s, "figures")
        for p in paths:
            tracker.log_artifact(data.parent["run_id"], p, "report")
