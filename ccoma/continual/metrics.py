"""Continual-learning metrics from the deployment performance matrix and the online win rate.

The matrix ``P[i, j]`` is the greedy win rate on deployment phase ``j`` measured at evaluation ``i``
(deployment step ``eval_steps[i]``; row 0 is the model as trained, before any deployment step).
Each phase is treated as one Avalanche "experience" whose training window is the stretch of
deployment in which it first occurs. Forgetting, BWT and ForwardTransfer are Avalanche's own
metric containers (avalanche-lib), fed from the matrix:

- Forgetting(j) = P[end of j's window, j] - P[final, j], for phases whose window closed before the end;
- BWT(j) = -Forgetting(j);
- ForwardTransfer(j) = P[last evaluation before j's window, j] - P[0, j], for phases that start later.

Recovery after a shift: deployment steps from the shift until the rolling online win rate regains
``fraction`` of its pre-shift level (the mean over the pre-shift stretch of at most ``window`` steps).
"""
from __future__ import annotations

import math
from typing import Sequence


def _index_at_or_before(steps: Sequence[int], step: int) -> int | None:
    idx = [i for i, s in enumerate(steps) if s <= step]
    return idx[-1] if idx else None


def cl_metrics(matrix: Sequence[Sequence[float]], eval_steps: Sequence[int], phases: Sequence[str],
               windows: dict[str, tuple[int, int]]) -> dict[str, float]:
    """Average performance, per-phase forgetting, BWT and forward transfer (Avalanche containers).

    ``windows[phase] = (start, end)``: deployment steps where the phase is first active.
    Returns flat ``{"avg_performance": ..., "forgetting/<phase>": ..., "bwt": ..., "forward_transfer": ...}``;
    a metric with no defined term (e.g. a single phase) is left out.
    """
    import warnings

    with warnings.catch_warnings():  # avalanche pulls qpsolvers, which warns that it found no QP solver
        warnings.simplefilter("ignore")
        from avalanche.evaluation.metrics import BWT, Forgetting, ForwardTransfer

    if not matrix:
        return {}
    final = len(matrix) - 1
    forgetting, bwt, fwt = Forgetting(), BWT(), ForwardTransfer()
    for j, phase in enumerate(phases):
        start, end = windows.get(phase, (0, eval_steps[final]))
        end_i = _index_at_or_before(eval_steps, end)
        if end < eval_steps[final] and end_i is not None and end_i < final:
            forgetting.update(j, matrix[end_i][j], initial=True)
            forgetting.update(j, matrix[final][j])
            bwt.update(j, matrix[end_i][j], initial=True)
            bwt.update(j, matrix[final][j])
        before_i = _index_at_or_before(eval_steps, start - 1) if start > 0 else None
        if before_i is not None:
            fwt.update(j, matrix[0][j], initial=True)
            fwt.update(j, matrix[before_i][j])
    out = {"avg_performance": sum(matrix[final]) / len(matrix[final])}
    for j, v in forgetting.result().items():
        out[f"forgetting/{phases[j]}"] = float(v)
    b = bwt.result()
    if b:
        out["bwt"] = float(sum(b.values()) / len(b))
    f = fwt.result()
    if f:
        out["forward_transfer"] = float(sum(f.values()) / len(f))
    return out


def recovery_steps(steps: Sequence[int], win_rate: Sequence[float], shift: int, fraction: float = 0.8,
                   window: int | None = None, sustain: int = 3) -> tuple[float | None, float]:
    """(steps after ``shift`` until the online win rate regains ``fraction`` of its pre-shift level, level).

    A recovery must hold: it is the first point after the drop from which ``sustain`` consecutive
    logged points are all at or above the threshold (one lucky point in a noisy series is not a
    recovery). Returns ``(None, level)`` when it never recovers within the series, and ``(0, level)``
    when it never dropped below the threshold. The pre-shift level is the mean of points in
    ``[shift - window, shift)``; with no pre-shift points the level is undefined (``nan``).
    """
    lo = shift - window if window else -math.inf
    pre = [w for s, w in zip(steps, win_rate) if lo <= s < shift]
    if not pre:
        return None, float("nan")
    level = sum(pre) / len(pre)
    threshold = fraction * level
    post = [(s, w) for s, w in zip(steps, win_rate) if s >= shift]
    below = [w < threshold for _, w in post]
    if not any(below):
        return 0.0, level
    first_drop = below.index(True)
    for i in range(first_drop + 1, len(post) - sustain + 1):
        if not any(below[i:i + sustain]):
            return float(post[i][0] - shift), level
    return None, level
