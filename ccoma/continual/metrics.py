"""Continual-learning metrics from the greedy performance matrix and the greedy test series.

Every definition, with its formula, is in docs/metrics.md; this docstring only names the inputs.

- ``matrix[i][j]`` ``[E, P]``: greedy win rate on deployment phase ``j`` measured at evaluation ``i``
  (deployment step ``eval_steps[i]``; row 0 is the model as trained, before any deployment step).
- ``windows[phase] = (start, end)``: the deployment stretch where a phase is first active;
  ``active[phase] = [(start, end), ...]``: every stretch where it is active (repeated shifts).
- the greedy test series ``(test_steps, test_values)`` ``[K]``: pymarl's test win rate along
  deployment (``deploy/test/win_rate``), and ``shifts``: ``{name: deployment step}`` where the world changes.

Forgetting and BWT are fed through Avalanche's metric containers (avalanche-lib ``Forgetting``,
``BWT``). Avalanche's ``ForwardTransfer`` is GEM's (accuracy before training minus a random model's),
not Continual World's transfer against a from-scratch reference, so :func:`forward_transfer` is
computed here. ``cl_metrics`` and ``recovery_steps`` keep their historical signatures for the harness.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np


def _index_at_or_before(steps: Sequence[int], step: float) -> int | None:
    idx = [i for i, s in enumerate(steps) if s <= step]
    return idx[-1] if idx else None


def _avalanche():
    import warnings

    with warnings.catch_warnings():  # avalanche pulls qpsolvers, which warns that it found no QP solver
        warnings.simplefilter("ignore")
        from avalanche.evaluation.metrics import BWT, Forgetting
    return BWT, Forgetting


def cl_metrics(matrix: Sequence[Sequence[float]], eval_steps: Sequence[int], phases: Sequence[str],
               windows: dict[str, tuple[int, int]]) -> dict[str, float]:
    """Average performance (end, over time), per-phase forgetting and BWT from the matrix ``[E, P]``.

    ``windows[phase] = (start, end)``: deployment steps where the phase is first active. Returns flat
    ``{"avg_performance", "avg_performance_over_time", "forgetting/<phase>", "bwt"}``; a metric with
    no defined term (e.g. no phase whose window closed before the end) is left out.
    """
    if not matrix:
        return {}
    BWT, Forgetting = _avalanche()
    final = len(matrix) - 1
    forgetting, bwt = Forgetting(), BWT()
    for j, phase in enumerate(phases):
        _, end = windows.get(phase, (0, eval_steps[final]))
        end_i = _index_at_or_before(eval_steps, end)
        if end < eval_steps[final] and end_i is not None and end_i < final:
            forgetting.update(j, matrix[end_i][j], initial=True)
            forgetting.update(j, matrix[final][j])
            bwt.update(j, matrix[end_i][j], initial=True)
            bwt.update(j, matrix[final][j])
    out = {"avg_performance": float(np.mean(matrix[final])),
           "avg_performance_over_time": average_over_time(matrix, eval_steps)}
    for j, v in forgetting.result().items():
        out[f"forgetting/{phases[j]}"] = float(v)
    b = bwt.result()
    if b:
        out["bwt"] = float(sum(b.values()) / len(b))
    return out


def average_over_time(matrix: Sequence[Sequence[float]], eval_steps: Sequence[int]) -> float:
    """Time average of P(t) = mean over phases of ``matrix[t]`` (trapezoid over the evaluation steps)."""
    p = np.asarray(matrix, dtype=float).mean(axis=1)  # [E]
    if len(p) == 1:
        return float(p[0])
    return auc(eval_steps, p, eval_steps[0], eval_steps[-1])


def auc(steps: Sequence[float], values: Sequence[float], start: float, end: float) -> float:
    """Normalised area under a series on ``[start, end]``: (1 / (end - start)) * integral, trapezoid,
    values linearly interpolated at the ends (held constant beyond the series); nan if empty."""
    s, v = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if len(s) == 0 or end <= start:
        return math.nan
    order = np.argsort(s)
    s, v = s[order], v[order]
    inner = (s > start) & (s < end)
    xs = np.concatenate([[start], s[inner], [end]])
    ys = np.interp(xs, s, v)
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2) / (end - start))


def forward_transfer(steps: Sequence[float], values: Sequence[float], window: tuple[float, float],
                     ref_steps: Sequence[float], ref_values: Sequence[float]) -> float:
    """Continual World's FT of one phase: ``(AUC - AUC_ref) / (1 - AUC_ref)``.

    ``AUC``: normalised area under the method's greedy win rate on the phase over its window
    ``(start, end)``; ``AUC_ref``: the same for a from-scratch reference trained only on that phase,
    over its own first ``end - start`` steps (its steps count from 0). nan when either is missing or
    the reference is perfect (AUC_ref = 1 leaves nothing to transfer).
    """
    start, end = window
    a = auc(steps, values, start, end)
    b = auc(ref_steps, ref_values, 0, end - start)
    if a != a or b != b or b >= 1.0:
        return math.nan
    return (a - b) / (1.0 - b)


def recovery_steps(steps: Sequence[int], win_rate: Sequence[float], shift: int, fraction: float = 0.8,
                   window: int | None = None, sustain: int = 3) -> tuple[float | None, float]:
    """(steps after ``shift`` until the win rate regains ``fraction`` of its pre-shift level, level).

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
    post = [(s, w) for s, w in zip(steps, win_rate) if s >= shift]
    return _first_sustained(post, fraction * level, shift, sustain), level


def _first_sustained(post: list[tuple[float, float]], threshold: float, shift: float,
                     sustain: int) -> float | None:
    below = [w < threshold for _, w in post]
    if not any(below):
        return 0.0
    first_drop = below.index(True)
    for i in range(first_drop + 1, len(post) - sustain + 1):
        if not any(below[i:i + sustain]):
            return float(post[i][0] - shift)
    return None


def shift_recovery(steps: Sequence[int], win_rate: Sequence[float], shifts: Mapping[str, int],
                   fraction: float = 0.8, last: int = 5, sustain: int = 3) -> dict[str, dict]:
    """Per shift: pre-shift terminal level, post-shift low and recovery time of a greedy series ``[K]``.

    The terminal level is the mean of the last ``last`` points before the shift (and after the
    previous shift); recovery is the first point from which ``sustain`` consecutive points are all
    at or above ``fraction * level``, searched only up to the next shift (a recovery must happen in
    its own stretch). Returns ``{name: {"step", "level", "low", "recovery_steps" (None: never)}}``.
    """
    s, v = np.asarray(steps, dtype=float), np.asarray(win_rate, dtype=float)
    ordered = sorted(shifts.items(), key=lambda kv: kv[1])
    out = {}
    for k, (name, at) in enumerate(ordered):
        prev = ordered[k - 1][1] if k else -math.inf
        nxt = ordered[k + 1][1] if k + 1 < len(ordered) else math.inf
        pre = v[(s < at) & (s >= prev)][-last:]
        stretch = (s >= at) & (s < nxt)
        post = list(zip(s[stretch].tolist(), v[stretch].tolist()))
        if len(pre) == 0 or not post:
            out[name] = {"step": at, "level": math.nan, "low": math.nan, "recovery_steps": None}
            continue
        level = float(pre.mean())
        rec = _first_sustained(post, fraction * level, at, sustain)
        out[name] = {"step": at, "level": level, "low": float(min(w for _, w in post)), "recovery_steps": rec}
    return out


def maintenance(matrix: Sequence[Sequence[float]], eval_steps: Sequence[int], phases: Sequence[str],
                active: Mapping[str, Sequence[tuple[int, int]]]) -> dict[str, float]:
    """Performance maintenance (L2M): for each phase, the mean of ``P[i, j] - P[e, j]`` over the
    evaluations ``i`` made while ``j`` is inactive (strictly outside its stretches: an evaluation at a
    stretch's first step precedes any learning there) after one of its stretches ended, ``e`` being
    the last evaluation at or before the end of ``j``'s most recent stretch. Negative: lost between
    exposures. Returns ``{"maintenance/<phase>": ..., "maintenance": mean over phases}`` (only
    phases that have such evaluations)."""
    m = np.asarray(matrix, dtype=float)  # [E, P]
    out: dict[str, float] = {}
    for j, phase in enumerate(phases):
        stretches = sorted(active.get(phase, ()))
        terms = []
        for i, step in enumerate(eval_steps):
            if any(a < step < b for a, b in stretches):  # at a stretch's first step it has not acted yet
                continue
            ended = [b for a, b in stretches if b <= step]
            if not ended:
                continue
            e = _index_at_or_before(eval_steps, max(ended))
            if e is not None and e < i:
                terms.append(m[i, j] - m[e, j])
        if terms:
            out[f"maintenance/{phase}"] = float(np.mean(terms))
    per = list(out.values())
    if per:
        out["maintenance"] = float(np.mean(per))
    return out


def recovery_trend(recoveries: Sequence[float | None]) -> float:
    """Least-squares slope of the recovery times of successive shifts (steps per shift; negative:
    recovering faster each time). Shifts never recovered are left out; nan with fewer than 2."""
    pts = [(k, r) for k, r in enumerate(recoveries) if r is not None]
    if len(pts) < 2:
        return math.nan
    x, y = np.asarray(pts, dtype=float).T
    return float(np.polyfit(x, y, 1)[0])


def continual_metrics(matrix: Sequence[Sequence[float]], eval_steps: Sequence[int], phases: Sequence[str],
                      windows: dict[str, tuple[int, int]], test_steps: Sequence[int] = (),
                      test_win_rate: Sequence[float] = (), shifts: Mapping[str, int] | None = None,
                      active: Mapping[str, Sequence[tuple[int, int]]] | None = None,
                      fraction: float = 0.8) -> dict[str, float]:
    """Every continual-learning summary the harness logs as ``cl/<key>`` at the last deployment step.

    Matrix metrics (:func:`cl_metrics`, :func:`maintenance` when ``active`` lists repeated
    stretches) plus, per shift of the greedy test series (:func:`shift_recovery`):
    ``pre_shift_win_rate/<shift>``, ``post_shift_low/<shift>``, ``recovered/<shift>`` (1 or 0) and
    ``recovery_steps/<shift>`` (only when it recovered), and ``recovery_trend`` over 2+ shifts.
    Forward transfer needs a reference run and is computed by the report (analysis/cl.py).
    """
    out = cl_metrics(matrix, eval_steps, phases, windows)
    if active:
        out.update(maintenance(matrix, eval_steps, phases, active))
    if shifts and len(test_steps):
        rec = shift_recovery(test_steps, test_win_rate, shifts, fraction=fraction)
        for name, r in rec.items():
            out[f"pre_shift_win_rate/{name}"] = r["level"]
            out[f"post_shift_low/{name}"] = r["low"]
            out[f"recovered/{name}"] = float(r["recovery_steps"] is not None)
            if r["recovery_steps"] is not None:
                out[f"recovery_steps/{name}"] = r["recovery_steps"]
        if len(rec) >= 2:
            out["recovery_trend"] = recovery_trend([r["recovery_steps"] for r in rec.values()])
    return {k: v for k, v in out.items() if v == v}
