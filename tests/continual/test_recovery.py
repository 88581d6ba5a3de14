import math

from ccoma.continual.metrics import recovery_steps

STEPS = list(range(0, 200, 10))


def test_recovery_needs_a_sustained_return_to_the_pre_shift_level():
    # level 0.5 before the shift at 100; threshold 0.4
    win = [0.5] * 10 + [0.1, 0.1, 0.45, 0.1, 0.1, 0.42, 0.44, 0.5, 0.1, 0.1]
    rec, level = recovery_steps(STEPS, win, shift=100)
    assert level == 0.5
    assert rec == 50.0  # 150, 160, 170 hold; the single point at 120 does not count


def test_no_recovery_when_only_isolated_points_reach_the_threshold():
    win = [0.2] * 10 + [0.0, 0.3, 0.0, 0.3, 0.0, 0.3, 0.0, 0.3, 0.16, 0.0]
    rec, _ = recovery_steps(STEPS, win, shift=100)
    assert rec is None


def test_never_dropped_and_no_history():
    rec, level = recovery_steps(STEPS, [0.5] * 20, shift=100)
    assert (rec, level) == (0.0, 0.5)
    rec, level = recovery_steps(STEPS, [0.5] * 20, shift=0)
    assert rec is None and math.isnan(level)
