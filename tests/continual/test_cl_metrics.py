"""Every continual-learning metric on small performance matrices and series worked out by hand."""
import math

import pytest

from ccoma.continual import metrics as M

# two phases, evaluations every 100 steps; phase a is deployed first (0-100), then b until the end
STEPS = [0, 100, 200, 300]
MATRIX = [[0.8, 0.2], [0.9, 0.1], [0.6, 0.5], [0.5, 0.7]]
WINDOWS = {"a": (0, 100), "b": (100, 300)}


def test_average_performance_forgetting_and_bwt():
    out = M.cl_metrics(MATRIX, STEPS, ["a", "b"], WINDOWS)
    assert out["avg_performance"] == pytest.approx(0.6)              # (0.5 + 0.7) / 2
    # P(t) = 0.5, 0.5, 0.55, 0.6; trapezoid over equal gaps: (0.5 + 0.525 + 0.575) / 3
    assert out["avg_performance_over_time"] == pytest.approx(1.6 / 3)
    assert out["forgetting/a"] == pytest.approx(0.4)                 # 0.9 at the end of a's window - 0.5
    assert "forgetting/b" not in out                                 # b's window reaches the end
    assert out["bwt"] == pytest.approx(-0.4)
    assert M.cl_metrics([], [], [], {}) == {}


def test_auc_and_forward_transfer_against_a_reference():
    assert M.auc([0, 10], [0.0, 1.0], 0, 10) == pytest.approx(0.5)
    assert M.auc([0, 10], [0.0, 1.0], 5, 10) == pytest.approx(0.75)  # interpolated at the start
    assert math.isnan(M.auc([], [], 0, 10))
    # method on its window (100, 300): AUC 0.4; reference's first 200 steps: AUC 0.2 -> (0.4-0.2)/(1-0.2)
    ft = M.forward_transfer([100, 200, 300], [0.2, 0.4, 0.6], (100, 300), [0, 100, 200], [0.0, 0.2, 0.4])
    assert ft == pytest.approx(0.25)
    worse = M.forward_transfer([100, 300], [0.0, 0.0], (100, 300), [0, 200], [0.5, 0.5])
    assert worse == pytest.approx(-1.0)                              # (0 - 0.5) / 0.5
    assert math.isnan(M.forward_transfer([100, 300], [0.5, 0.5], (100, 300), [0, 200], [1.0, 1.0]))


# cyclic: z until 200, h 200-300, z 300-400, h 400-500 (cf. scenarios/cyclic_composition.yaml)
CYC_STEPS = [0, 100, 200, 300, 400, 500]
CYC = [[0.9, 0.1], [0.9, 0.1], [0.8, 0.2], [0.6, 0.5], [0.8, 0.4], [0.7, 0.6]]
ACTIVE = {"z": [(0, 200), (300, 400)], "h": [(200, 300), (400, 500)]}


def test_performance_maintenance_across_repeated_shifts():
    out = M.maintenance(CYC, CYC_STEPS, ["z", "h"], ACTIVE)
    # z: at 300 (after h) 0.6 - 0.8 (end of its 1st stretch, 200); at 500: 0.7 - 0.8 (end of 2nd, 400)
    assert out["maintenance/z"] == pytest.approx(-0.15)
    # h: at 400 (after z) 0.4 - 0.5 (end of its 1st stretch, 300); nothing else is after an h stretch
    assert out["maintenance/h"] == pytest.approx(-0.1)
    assert out["maintenance"] == pytest.approx(-0.125)
    assert M.maintenance(CYC, CYC_STEPS, ["z", "h"], {}) == {}


def test_shift_recovery_uses_the_terminal_level_and_needs_a_sustained_return():
    steps = list(range(0, 200, 10))
    win = [0.2] * 5 + [0.5] * 5 + [0.1, 0.1, 0.45, 0.1, 0.1, 0.46, 0.47, 0.5, 0.1, 0.1]
    r = M.shift_recovery(steps, win, {"unseen": 100})["unseen"]
    assert r["level"] == pytest.approx(0.5)                          # the last 5 points, not all 10
    assert r["low"] == pytest.approx(0.1)
    assert r["recovery_steps"] == 50.0                               # 150-170 hold >= 0.8 * 0.5; 120 alone does not
    # a later shift at 160 cuts the first stretch short: no sustained return before it
    both = M.shift_recovery(steps, win, {"unseen": 100, "again": 160})
    assert both["unseen"]["recovery_steps"] is None
    assert both["again"]["level"] == pytest.approx((0.1 + 0.45 + 0.1 + 0.1 + 0.46) / 5)
    flat = M.shift_recovery(steps, [0.5] * 20, {"s": 100})["s"]
    assert flat["recovery_steps"] == 0.0                             # never dropped
    assert math.isnan(M.shift_recovery(steps, win, {"s": 0})["s"]["level"])


def test_recovery_trend_is_the_slope_over_recovered_shifts():
    # points (0, 100), (2, 60), (3, 20): Sxy = -120, Sxx = 14/3
    assert M.recovery_trend([100, None, 60, 20]) == pytest.approx(-120 / (14 / 3))
    assert math.isnan(M.recovery_trend([100, None]))


def test_continual_metrics_collects_everything_for_the_harness():
    steps = list(range(0, 500, 10))
    win = [0.8] * 20 + [0.1] * 5 + [0.8] * 5 + [0.1] * 5 + [0.78] * 15      # shifts at 200 and 300
    out = M.continual_metrics(CYC, CYC_STEPS, ["z", "h"], {"z": (0, 200), "h": (200, 300)}, steps, win,
                              {"first": 200, "second": 300}, ACTIVE)
    assert out["recovery_steps/first"] == 50.0 and out["recovery_steps/second"] == 50.0
    assert out["recovered/first"] == 1.0 and out["pre_shift_win_rate/second"] == pytest.approx(0.8)
    assert out["post_shift_low/first"] == pytest.approx(0.1)
    assert out["recovery_trend"] == pytest.approx(0.0)
    assert out["maintenance"] == pytest.approx(-0.125) and out["forgetting/z"] == pytest.approx(0.1)
    never = M.continual_metrics(CYC, CYC_STEPS, ["z", "h"], {}, steps, [0.8] * 20 + [0.0] * 30, {"s": 200})
    assert never["recovered/s"] == 0.0 and "recovery_steps/s" not in never
    assert all(v == v for v in never.values())                       # nothing undefined is logged
