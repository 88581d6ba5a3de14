"""analysis.stats on synthetic scores with known answers (IQM, intervals, probability of improvement)."""
import numpy as np
import pandas as pd
import pytest

from analysis import stats as S


def test_iqm_mean_median_of_known_sets():
    x = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0])[:, None]        # IQM drops 2 runs at each end
    row = S.interval_estimates({"a": x}).iloc[0]
    assert row.iqm == pytest.approx(0.35) and row["mean"] == pytest.approx(0.3875)
    assert row["median"] == pytest.approx(0.35) and row.runs == 8
    assert row.iqm_lo < row.iqm < row.iqm_hi and 0.0 <= row.mean_lo < row.mean_hi <= 1.0
    big = np.arange(1, 101, dtype=float)[:, None]                            # IQM of 1..100: mean of 26..75
    assert S.interval_estimates({"b": big}).iloc[0].iqm == pytest.approx(50.5)
    one = S.interval_estimates({"c": x[:1]}).iloc[0]
    assert one.iqm == 0.0 and np.isnan(one.iqm_lo)                           # no interval from one run


def test_bootstrap_is_stratified_over_tasks():
    # task 0: every run scores 0, task 1: every run scores 1. Resampling runs within each task always
    # gives a mean of 0.5; pooling the 10 values and resampling them would not.
    x = np.stack([np.zeros(5), np.ones(5)], axis=1)                          # [R=5, T=2]
    row = S.interval_estimates({"a": x}).iloc[0]
    assert (row["mean"], row.mean_lo, row.mean_hi) == (0.5, 0.5, 0.5)


def test_probability_of_improvement():
    rng = np.random.default_rng(0)
    low = rng.uniform(0.0, 0.4, (6, 1))
    poi = S.probability_of_improvement({"c-coma": low + 0.5, "coma": low, "same": low + 0.5, "top": low + 0.9})
    p = poi.set_index("other")
    assert p.loc["coma"].p == 1.0 and p.loc["coma"].lo == 1.0               # C-COMA dominates every run
    assert p.loc["same"].p == 0.5                                            # identical runs
    assert p.loc["top"].p == 0.0 and p.loc["top"].hi == 0.0                  # dominated
    half = S.probability_of_improvement({"c-coma": np.array([[0.2], [0.6]]), "x": np.array([[0.4], [0.8]])})
    assert half.iloc[0].p == pytest.approx(0.25)                             # 1 of 4 pairs wins
    assert S.probability_of_improvement({"coma": low}).empty                 # no C-COMA: nothing to compare


def test_interval_width_shrinks_with_more_seeds():
    # mean width over 5 draws of n runs from one distribution (with 2-3 runs a bootstrap understates
    # the spread, which is why the report calls such intervals unreliable; from 5 runs on it shrinks)
    rng = np.random.default_rng(1)
    widths = []
    for n in (5, 20, 80):
        rows = S.interval_estimates({f"m{k}": rng.beta(4, 4, (n, 1)) for k in range(5)}, reps=1000)
        widths.append(((rows.iqm_hi - rows.iqm_lo).mean(), (rows.mean_hi - rows.mean_lo).mean()))
    assert widths[0][0] > widths[1][0] > widths[2][0]
    assert widths[0][1] > widths[1][1] > widths[2][1]


def test_performance_profile_and_mean_ci():
    runs = np.array([[0.1, 0.5, 0.9], [0.2, 0.6, 1.0]])                      # [R=2, K=3]
    prof, lo, hi = S.performance_profile({"a": runs}, np.array([0.0, 0.55, 0.95]))["a"]
    assert prof == pytest.approx([1.0, 0.5, 1 / 6])                          # run means of (1,1), (1/3,2/3), (0,1/3)
    assert lo[0] == hi[0] == 1.0 and lo[1] <= 0.5 <= hi[1]
    mean, lo, hi = S.mean_ci([0.0, 0.5], (0.0, 1.0))
    assert (mean, lo, hi) == (0.25, 0.0, 0.5)                                # resampling 2 runs: 0, 0.25 or 0.5
    assert np.isnan(S.mean_ci([0.3])[1])


def test_run_scores_from_a_greedy_series():
    rows = [{"method": "c-coma", "mode": "continual", "seed": s, "key": S.TEST_KEY, "step": st, "value": v}
            for s in (0, 1) for st, v in zip(range(0, 1001, 100), [0.8] * 3 + [0.2] * 8)]
    scores = S.run_scores(pd.DataFrame(rows), unseen_from=200).set_index("seed")
    # deployment: trapezoid of 0.8 over [0, 200], a ramp 0.8 -> 0.2 over [200, 300], 0.2 after
    assert scores.loc[0].deployment == pytest.approx((160 + 50 + 140) / 1000)
    assert scores.loc[0].post_shift == pytest.approx((50 + 140) / 800)
    assert scores.loc[1].final == pytest.approx(0.2)
    assert S.score_dict(scores.reset_index(), "post_shift")["c-coma"].shape == (2, 1)


def test_reliability_note():
    assert S.reliability_note({"c-coma": 5, "coma": 10}) is None
    note = S.reliability_note({"c-coma": 2, "coma": 5})
    assert "unreliable" in note and "fewer than 5 runs" in note and "as few as 2" in note
