"""Report sections added for fair comparison (issues 9 and 10): budgets and exploration, aggregate
statistics, continual-learning metrics, and the sampling-vs-adaptation control.

Each function appends blocks to a :class:`analysis.document.Doc` and returns the figures it drew.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis import cl as clm
from analysis import stat_figures as sf
from analysis import stats as st
from analysis.document import Doc
from analysis.figures import Figure
from analysis.frame import ONLINE, ONLINE_KEY, ScenarioData, label, method_table, run_summary

TAUS = np.linspace(0.0, 1.0, 41)


def _fmt(mean, lo, hi) -> str:
    if mean != mean:
        return "-"
    return f"{mean:.2f}" if lo != lo else f"{mean:.2f} [{lo:.2f}, {hi:.2f}]"


def budgets(doc: Doc, data: ScenarioData) -> None:
    """Trainable/total parameter counts and exploration schedule of each method (run params)."""
    runs = data.runs[(data.runs.status == "finished") & (data.runs["mode"] != "reference")]
    if runs.empty:
        return
    rows = []
    for method in data.methods():
        params = [p for p in runs.params[runs.method == method]]
        if not params:
            continue

        def one(key):
            vals = sorted({p.get(key) for p in params if p.get(key) is not None})
            return ", ".join(vals) if vals else "not logged"
        nets = sorted({k[len("params.trainable."):] for p in params for k in p if k.startswith("params.trainable.")})
        per_net = "; ".join(f"{n} {one('params.trainable.' + n)}" for n in nets) or "-"
        trainable, total = one("params.trainable"), one("params.total")
        rows.append([label(method), runs["mode"][runs.method == method].iloc[0],
                     f"{trainable} / {total}", per_net, one("exploration")])
    doc.add("h3", "Trainable parameters and exploration")
    doc.add("p", "Parameters a method updates during deployment out of its total (frozen methods update none), "
                 "per network, and the exploration schedule its behaviour policy followed (run params "
                 "params.trainable, params.total, params.trainable.<network>, exploration).")
    doc.add("table", header=["method", "mode", "trainable / total", "trainable per network", "exploration"],
            items=rows)


def statistics(doc: Doc, data: ScenarioData, out_dir: Path) -> list[Figure]:
    """IQM/mean/median with bootstrap CIs, P(C-COMA > X), performance profiles (greedy test series)."""
    scores = st.run_scores(data.metrics, data.unseen_from)
    doc.add("h3", "Aggregate statistics (greedy test win rate)")
    if scores.empty:
        doc.add("note", "No greedy test series (deploy/test/win_rate) was logged: no aggregate statistics.")
        return []
    used = [c for c in ("deployment", "post_shift") if scores[c].notna().any()]
    tables = {c: st.interval_estimates(st.score_dict(scores, c)) for c in used}
    doc.add("p", "Per run, the greedy test win rate is averaged over the whole deployment (normalised area under "
                 "its curve) and over the stretch after unseen situations begin. Over runs: interquartile mean "
                 f"(IQM), mean and median, each with a 95% percentile stratified-bootstrap interval ({st.REPS} "
                 "resamples of the runs; Agarwal et al. 2021, the estimators rliable and marl-eval report).")
    note = st.reliability_note(scores.groupby("method").seed.nunique().to_dict())
    if note:
        doc.add("note", note)
    for c in used:
        t = tables[c]
        doc.add("table", header=["method", "runs", f"IQM ({st.SCORES[c]})", "mean", "median"],
                items=[[label(r["method"]), r["runs"], _fmt(r["iqm"], r["iqm_lo"], r["iqm_hi"]),
                        _fmt(r["mean"], r["mean_lo"], r["mean_hi"]), _fmt(r["median"], r["median_lo"], r["median_hi"])]
                       for r in t.to_dict("records")])
    pois = {c: st.probability_of_improvement(st.score_dict(scores, c)) for c in used}
    if any(len(p) for p in pois.values()):
        rows = []
        others = next(p for p in pois.values() if len(p)).other
        for o in others:
            cells = []
            for c in used:
                r = pois[c].set_index("other").loc[o] if o in set(pois[c].other) else None
                cells.append("-" if r is None else _fmt(r["p"], r["lo"], r["hi"]))
            rows.append([f"P(C-COMA > {label(o)})", *cells])
        doc.add("p", "Probability of improvement: the chance that a random C-COMA run scores higher than a random "
                     "run of the other method (Mann-Whitney U / nm), 95% bootstrap interval; 0.5 means no difference.")
        doc.add("table", header=["comparison", *[st.SCORES[c] for c in used]], items=rows)
    else:
        doc.add("note", "Probability of improvement not measurable: needs C-COMA and another method.")
    profiles = st.performance_profile(st.post_shift_points(data.metrics, data.unseen_from), TAUS)
    return [sf.aggregates_figure(data.scenario, tables, out_dir), sf.poi_figure(data.scenario, pois, out_dir),
            sf.profile_figure(data.scenario, profiles, TAUS, out_dir)]


def continual(doc: Doc, data: ScenarioData) -> None:
    """The cl/ metrics of each method (means over runs) and forward transfer against references."""
    doc.add("h3", "Continual-learning metrics (greedy)")
    header, rows, shifts = clm.cl_table(data)
    if not rows or all(all(c in ("-", "0/0", clm.NOT_MEASURED) for c in r[2:]) for r in rows):
        doc.add("note", "No cl/ metrics were logged: no continual-learning table.")
        return
    ft_note = ("forward transfer: Continual World's, against the from-scratch reference runs"
               if not clm.forward_transfer(data).empty else
               "forward transfer: not measured (no from-scratch reference runs; run evaluate with --reference)")
    doc.add("p", "Means over runs, from the greedy performance matrix and the greedy test series; formulas in "
                 f"docs/metrics.md. Forgetting > 0 means lost; BWT = -mean forgetting; {ft_note}. Recovered: "
                 "runs whose greedy win rate regained 80% of its pre-shift terminal level (mean of the last 5 "
                 "test points) for 3 points in a row before the next shift.")
    doc.add("table", header=header, items=rows)


def sampling(doc: Doc, data: ScenarioData, out_dir: Path) -> list[Figure]:
    """C-COMA beside COMA-explore: greedy and online numbers in separate, labelled tables, and a figure."""
    have = set(data.metrics.method)
    doc.add("h3", "Sampling cost vs adaptation (C-COMA beside COMA-explore)")
    if "c-coma" not in have or "coma-explore" not in have:
        doc.add("note", "Not measurable: needs C-COMA and COMA-explore runs (frozen weights acting with C-COMA's "
                        "behaviour policy, mode frozen-explore).")
        return []
    methods = [m for m in ("c-coma", "coma-explore", "coma") if m in have]
    sub = ScenarioData(data.scenario, True, data.parent, data.runs, data.metrics[data.metrics.method.isin(methods)],
                       data.unseen_from)
    doc.add("p", "COMA-explore keeps COMA's trained weights frozen but acts with C-COMA's behaviour policy. Greedy, "
                 "it equals frozen COMA; online, the gap between it and greedy COMA is the cost of sampling, and "
                 "the gap between C-COMA and it is what adaptation buys at equal sampling.")
    for key, what in ((None, "Greedy test win rate"), (ONLINE_KEY, f"{ONLINE} win rate (last 30 episodes)")):
        t = method_table(run_summary(sub, key) if key else run_summary(sub), key or "deploy/test/win_rate")
        if t.empty:
            doc.add("note", f"{what}: not logged.")
            continue
        doc.add("p", f"{what}, mean over seeds [95% bootstrap interval]:")
        doc.add("table", header=["method", "seeds", "pre-shift", "post-shift low", "final"],
                items=[[label(r["method"]), r["seeds"], _fmt(r["pre"], r["pre_lo"], r["pre_hi"]),
                        _fmt(r["low"], r["low_lo"], r["low_hi"]), _fmt(r["final"], r["final_lo"], r["final_hi"])]
                       for r in t.to_dict("records")])
    return [sf.sampling_figure(data, out_dir)]


def online_table(doc: Doc, data: ScenarioData) -> None:
    """Every method's online series, in its own labelled table."""
    t = method_table(run_summary(data, ONLINE_KEY), ONLINE_KEY)
    if t.empty:
        return
    doc.add("h3", "Online win rate (behaviour policy; not comparable with the greedy tables)")
    doc.add("p", "Each method's own deployment episodes, last 30, as its behaviour policy acted. Continual methods "
                 "sample and explore here, frozen ones do not: this is not the greedy measure above and must not "
                 "be compared with it.")
    doc.add("table", header=["method", "mode", "seeds", "pre-shift", "post-shift low", "final"],
            items=[[label(r["method"]), r["mode"], r["seeds"], _fmt(r["pre"], r["pre_lo"], r["pre_hi"]),
                    _fmt(r["low"], r["low_lo"], r["low_hi"]), _fmt(r["final"], r["final_lo"], r["final_hi"])]
                   for r in t.to_dict("records")])
