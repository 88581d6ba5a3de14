"""analysis/ and ``ccoma report`` over runs logged through ccoma.tracking (sqlite and a real server)."""
from __future__ import annotations

import re
import uuid

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from analysis import frame as fr
from analysis import paper
from analysis.report import build_report
from ccoma.errors import CcomaError
from synthetic_runs import SHAPES, log_evaluate

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FIGURES = ["fig3_winrate_frozen", "fig4_winrate_continual", "fig5_return_continual", "online_winrate",
           "forgetting_recovery", "performance_matrix", "aggregates", "probability_of_improvement",
           "performance_profile", "sampling_vs_adaptation"]




def _check_png(path):
    from PIL import Image

    assert path.stat().st_size > 10_000, path
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] >= 600 and img.size[1] >= 300, (path, img.size)


# ---- pure pieces ------------------------------------------------------------------------------
def test_ci95_matches_student_t():
    from scipy import stats

    for n in (2, 3, 5, 11, 31, 40, 200):
        x = np.random.default_rng(n).normal(0.5, 0.1, n)
        mean, lo, hi = fr.ci95(x)
        half = stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / np.sqrt(n)
        assert mean == pytest.approx(x.mean()) and hi - mean == pytest.approx(half, rel=2e-3)
    assert np.isnan(fr.ci95([0.3])[1]) and fr.ci95_band([0.3]) == (0.3, 0.3)


def test_the_figures_band_is_ci95_at_every_step():
    """The curves' vectorised band (analysis.figures.mean_band) is ci95 step by step: 1 to 5 seeds,
    a NaN value, a win-rate clip, one seed (the band is the mean)."""
    from analysis.figures import mean_band

    rng = np.random.default_rng(0)
    rows = [(step, v) for step in range(40) for v in rng.uniform(0, 1, 1 + step % 5)] + [(7, np.nan), (41, 0.3)]
    runs = pd.DataFrame(rows, columns=["step", "value"])
    bounds = fr.bounds_of("deploy/test/win_rate")
    band = mean_band(runs, bounds)
    assert list(band.step) == sorted(set(runs.step))
    for step, mean, low, high in band.itertuples(index=False):
        values = runs.value[runs.step == step]
        want_mean = fr.ci95(values, bounds)[0]
        want_low, want_high = fr.ci95_band(values, bounds)  # seaborn's errorbar callable before
        assert (mean, low, high) == pytest.approx((want_mean, want_low, want_high), rel=1e-12, abs=1e-12), step
    assert (band.low <= band["mean"]).all() and (band.high >= band["mean"]).all() and band.low.min() >= 0


def test_intervals_stay_within_the_metric_range():
    wins = [0.0, 0.5]                                    # two seeds: t(1) = 12.7, the raw interval is huge
    mean, lo, hi = fr.ci95(wins)
    assert lo < 0 and hi > 1                             # what an unclipped interval claims
    assert fr.ci95(wins, fr.bounds_of("deploy/win_rate")) == (0.25, 0.0, 1.0)
    assert fr.ci95_band(wins, fr.bounds_of("eval/new_sites/win_rate")) == (0.0, 1.0)
    assert fr.ci95([2.0, 9.0], fr.bounds_of("deploy/return"))[1] == 0.0
    assert fr.bounds_of("cl/forgetting") == (-1.0, 1.0)         # forgetting can be negative
    assert fr.bounds_of("train/loss/td_error") == (-np.inf, np.inf)
    per_run = pd.DataFrame({"method": ["coma", "coma"], "mode": ["frozen"] * 2, "pre": wins, "low": wins,
                            "final": wins})
    row = fr.method_table(per_run).iloc[0]  # the table's bootstrap interval cannot leave the runs' range
    assert (row.pre_lo, row.pre_hi) == (0.0, 0.5)


def _table(**finals):
    rows = [{"method": m, "pre": 0.8, "low": 0.1, "final": f} for m, f in finals.items()]
    return pd.DataFrame(rows)


def test_paper_comparison_counts_and_disagreements():
    checks = {c.claim: c for c in paper.compare(_table(**{"c-coma": 0.3, "coma": 0.5, "qmix": 0.12}))}
    frozen = checks["Frozen methods (COMA, QMIX, VDN) do not recover"]
    assert frozen.verdict == "partly" and "agrees for 1/2 methods (not: COMA)" in frozen.detail
    assert checks["C-COMA stalls at about 0.6 win rate"].verdict == "differs"
    assert checks["C-QMIX stays near 0.1 win rate"].verdict == "not measurable"
    assert checks["COMA is the best frozen method"].verdict == "agrees"
    flat = pd.DataFrame([{"method": "c-coma", "pre": 0.5, "low": 0.45, "final": 0.6}])
    drop = paper.compare(flat)[0]
    assert drop.verdict == "differs" and "agrees for 0/1 methods" in drop.detail


def test_missing_numbers_are_not_measurable_never_differs():
    nan = float("nan")  # a C-COMA run with no greedy test points after the shift: "nan -> nan -> 0.00"
    table = pd.DataFrame([{"method": "c-coma", "pre": nan, "low": nan, "final": 0.0},
                          {"method": "coma", "pre": 0.8, "low": 0.1, "final": 0.1},
                          {"method": "coma-explore", "pre": 0.8, "low": 0.5, "final": 0.5}])
    checks = {c.claim: c for c in paper.compare(table)}
    assert checks["C-COMA recovers after the shift"].verdict == "not measurable"
    drop = checks["All methods drop when unseen situations begin"]
    assert drop.verdict == "agrees" and "not measurable for C-COMA" in drop.detail
    assert "COMA-explore" not in drop.detail                      # a control, not one of the paper's methods
    assert checks["C-COMA stalls at about 0.6 win rate"].verdict == "differs"  # final 0.0 is a number
    assert not any(c.verdict == "differs" and "nan" in c.detail for c in checks.values())


# ---- the frame --------------------------------------------------------------------------------
def test_frame_content(logged_runs):
    data = fr.load([logged_runs.scenario], logged_runs.uri)[logged_runs.scenario]
    assert data.has_experiment and data.unseen_from == logged_runs.unseen_from
    assert data.parent["backend"] == "ccoma-sim 1.0" and data.parent["deploy_steps"] == 1_000_000
    assert data.methods() == list(SHAPES)
    win = data.metrics[data.metrics.key == "deploy/win_rate"]
    assert win.groupby("method").seed.nunique().to_dict() == {m: 2 for m in SHAPES}
    assert win.step.max() == logged_runs.deploy_steps + 37
    assert set(win["mode"]) == {"frozen", "continual", "frozen-explore"}
    # the greedy test series: the same test points for every method of a seed, >= 40 of them, and
    # C-COMA and frozen COMA start from the same point (same weights, greedy, same episodes)
    test = data.metrics[data.metrics.key == fr.TEST_KEY]
    steps = test.groupby(["method", "seed"]).step.apply(tuple)
    assert steps.nunique() == 1 and len(steps.iloc[0]) >= 40
    first = test[test.step == 0].set_index(["method", "seed"]).value
    assert first["c-coma", 0] == first["coma", 0] == first["coma-explore", 0]
    # resampling puts every run on one grid, within its own range
    cur = fr.curves(data.metrics, "deploy/win_rate")
    assert cur.groupby(["method", "seed"]).step.max().le(win.step.max()).all()
    table = fr.method_table(fr.run_summary(data)).set_index("method")
    for method, (_, mode, pre, floor, final) in SHAPES.items():
        row = table.loc[method]
        assert row["mode"] == mode and row.seeds == 2
        assert abs(row.pre - pre) < 0.08 and abs(row.final - final) < 0.08, (method, row)
        assert row.low < pre - 0.3 and row.pre_lo <= row.pre <= row.pre_hi


# ---- whole reports ----------------------------------------------------------------------------
def test_report_from_sqlite(logged_runs, tmp_path):
    out = tmp_path / "rep"
    paths = build_report([logged_runs.scenario], logged_runs.uri, out, "both")
    assert [p.name for p in paths] == ["report.md", "report.html"]
    pngs = [out / "figures" / logged_runs.scenario / f"{name}.png" for name in FIGURES]
    for png in pngs:
        _check_png(png)
    md, page = paths[0].read_text(), paths[1].read_text()
    for png in pngs:
        assert f"figures/{logged_runs.scenario}/{png.name}" in md
    embedded = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(embedded) == len(FIGURES) + 2  # the figures and the two logged render frames
    assert "src='figures" not in page and "<style>" in page  # self-contained
    for text in ("not StarCraft II", "ccoma-sim 1.0", "t_env", "agrees for 6/6 methods",
                 "C-COMA seed 0: before adaptation", "2,000,000",
                 # budgets and exploration, from the run params
                 "| C-COMA | continual | 2134 / 31755 | agent 396; critic 1738 | eps-floor 0.5->0.01",
                 "| COMA | frozen | 0 / 31755 | - |",
                 # statistics on the greedy series, flagged as unreliable with 2 seeds
                 "IQM (mean after the shift)", "P(C-COMA > COMA-explore)", "Intervals are unreliable",
                 # continual metrics; no reference runs here
                 "| forward transfer |", "not measured (no from-scratch reference runs",
                 # the control beside C-COMA, and the online series labelled as such
                 "Sampling cost vs adaptation (C-COMA beside COMA-explore)",
                 "online (behaviour policy) win rate (last 30 episodes)", "judged on the greedy test win rate"):
        assert text in md, text
    assert md.index("| C-COMA | continual | 2 |") < md.index("| COMA-explore | frozen-explore | 2 |") \
        < md.index("| COMA | frozen | 2 |")                  # the control sits right beside C-COMA
    assert re.search(r"\| P\(C-COMA > VDN\) \| 1\.00 \[[0-9.]+, 1\.00\] \|", md)
    assert md.index("before adaptation") < md.index("after adaptation")
    from ccoma.tracking import Tracker

    client = Tracker(logged_runs.uri).client
    logged = {a.path for d in ("figures", "report") for a in client.list_artifacts(logged_runs.parent_run_id, d)}
    assert {"report/report.md", "report/report.html", "figures/fig3_winrate_frozen.png"} <= logged


def test_report_from_server_via_cli(mlflow_server, tmp_path, monkeypatch):
    from ccoma.cli import cli

    monkeypatch.chdir(tmp_path)
    scenario = f"srv{uuid.uuid4().hex[:6]}"
    log_evaluate(mlflow_server, scenario=scenario, seeds=(0,), deploy_steps=400_000, unseen_from=100_000)
    result = CliRunner().invoke(cli, ["report", "--scenario", scenario, "--tracking-uri", mlflow_server,
                                      "--format", "html"])
    assert result.exit_code == 0, result.output
    page = tmp_path / "reports" / scenario / "report.html"
    assert result.output.strip().endswith("report.html") and page.exists()
    assert not (page.parent / "report.md").exists()
    text = page.read_text()
    assert "(1 seed)" in text and "100,000" in text and text.count("data:image/png;base64,") == len(FIGURES) + 2
    for name in FIGURES:
        _check_png(page.parent / "figures" / scenario / f"{name}.png")


def test_missing_and_partial_runs(sqlite_store, tmp_path):
    methods = ("c-coma", "coma", "qmix", "vdn", "c-vdn")  # no C-QMIX; every C-VDN run crashes
    log_evaluate(sqlite_store, scenario="partial", methods=methods, seeds=(0, 1),
                 failed=(("c-vdn", 0), ("c-vdn", 1), ("coma", 1)))
    out = tmp_path / "rep"
    md = build_report("partial", sqlite_store, out, "md")[0].read_text()
    assert "no C-QMIX runs" in md and "no C-VDN runs (only unfinished runs)" in md
    assert "C-VDN seed 1: status failed" in md and "COMA seed 1: status failed" in md
    assert "| C-QMIX stays near 0.1 win rate | not measurable |" in md
    assert "Missing: no C-QMIX runs; no C-VDN runs." in md  # Fig. 4 drawn with C-COMA alone
    assert "| COMA | frozen | 1 |" in md  # the crashed COMA seed is not averaged in
    _check_png(out / "figures" / "partial" / "fig4_winrate_continual.png")

    log_evaluate(sqlite_store, scenario="frozen_only", methods=("coma", "qmix"), seeds=(0,))
    md = build_report("frozen_only", sqlite_store, out, "md")[0].read_text()
    assert "(cf. paper Fig. 4): not drawn (no C-COMA runs; no C-QMIX runs; no C-VDN runs)" in md
    assert not (out / "figures" / "frozen_only" / "fig4_winrate_continual.png").exists()
    assert "No rendered battle frames were logged" in md


def test_empty_or_absent_experiments_and_bad_format(sqlite_store, tmp_path):
    from ccoma.tracking import Tracker

    tracker = Tracker(sqlite_store)
    tracker.experiment_id("empty")
    parent = tracker.evaluate_run("no_children", "k", backend="ccoma-sim 1.0", budget="smoke")
    parent.finish("interrupted")
    paths = build_report(["empty", "absent", "no_children"], sqlite_store, tmp_path / "r", "both")
    md = paths[0].read_text()
    assert "Experiment ccoma/empty exists but holds no evaluate runs" in md
    assert "No experiment ccoma/absent" in md
    assert "No finished method runs" in md and "no C-COMA runs" in md
    assert "Fewer than two scenarios have finished runs" in md
    assert not list((tmp_path / "r").rglob("*.png"))
    assert tracker.experiment_id("absent", create=False) is None  # reporting creates nothing
    with pytest.raises(CcomaError, match="--format"):
        build_report("empty", sqlite_store, tmp_path / "r", "pdf")


def test_cross_scenario_report(logged_runs, tmp_path):
    log_evaluate(logged_runs.uri, scenario="other", methods=("c-coma", "coma"), seeds=(0, 1))
    out = tmp_path / "both"
    md = build_report([logged_runs.scenario, "other"], logged_runs.uri, out, "md", log_to_mlflow=False)[0]
    text = md.read_text()
    assert "## Across scenarios" in text and f"| final win rate | {logged_runs.scenario} | other |" in text
    assert re.search(r"\| QMIX \| 0\.\d\d \[[-0-9.]+, [0-9.]+\] \| - \|", text)
    _check_png(out / "figures" / "cross_scenario_final.png")
    assert (out / "figures" / "other" / "fig3_winrate_frozen.png").exists()
