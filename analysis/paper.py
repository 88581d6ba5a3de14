"""The C-COMA paper's reported result shape, checked against our numbers.

From the paper (section 5.2, Figs. 3-5): every method drops when unseen situations appear (200K);
frozen methods do not recover; continual C-COMA recovers and stalls at about 0.6 win rate; C-QMIX
stays near 0.1; C-VDN does not improve; C-COMA ends above C-QMIX and C-VDN; among the frozen methods
COMA does best. Each claim is judged from the per-method table of analysis.frame.method_table of the
greedy test win rate (means over seeds) with the thresholds below, and the verdict states the numbers
it used. A claim whose numbers are missing (a method without data on both sides of the shift, a nan)
is "not measurable", never "differs".
"""
from __future__ import annotations

import dataclasses

import pandas as pd

from analysis.frame import label

DROP = 0.10         # a drop at the shift: pre-shift minus post-shift low of at least this much win rate
RECOVER = 0.10      # a recovery: final minus post-shift low of at least this much
CCOMA_LEVEL, CCOMA_TOL = 0.6, 0.15
CQMIX_NEAR = 0.2    # "near 0.1": a final win rate at most this
PAPER_METHODS = ("c-coma", "coma", "qmix", "vdn", "c-qmix", "c-vdn")


@dataclasses.dataclass
class Check:
    claim: str
    verdict: str    # agrees | partly | differs | not measurable
    detail: str


def _row(table: pd.DataFrame, method: str) -> dict | None:
    sel = table[table.method == method] if len(table) else table
    return None if sel.empty else sel.iloc[0].to_dict()


def _shape(r: dict) -> str:
    def f(x):
        return "n/a" if x is None or x != x else f"{x:.2f}"
    return f"{label(r['method'])} {f(r['pre'])} -> {f(r['low'])} -> {f(r['final'])}"


def _has(r: dict | None, *cols: str) -> bool:
    """The row exists and every number the claim reads is a number (not nan, not missing)."""
    return r is not None and all(r.get(c) is not None and r[c] == r[c] for c in cols)


def _count(claim: str, rows: list[dict], ok, missing: str, cols=("pre", "low", "final")) -> Check:
    absent = [label(r["method"]) for r in rows if r is not None and not _has(r, *cols)]
    rows = [r for r in rows if _has(r, *cols)]
    if not rows:
        return Check(claim, "not measurable", missing + (f" ({', '.join(absent)}: no numbers)" if absent else ""))
    good = [r for r in rows if ok(r)]
    verdict = "agrees" if len(good) == len(rows) else "differs" if not good else "partly"
    bad = [label(r["method"]) for r in rows if not ok(r)]
    detail = f"agrees for {len(good)}/{len(rows)} methods" + (f" (not: {', '.join(bad)})" if bad else "")
    if absent:
        detail += f"; not measurable for {', '.join(absent)}"
    return Check(claim, verdict, detail + "; " + "; ".join(_shape(r) for r in rows))


def _single(claim: str, r: dict | None, ok, what: str, cols=("low", "final")) -> Check:
    if r is None:
        return Check(claim, "not measurable", f"no finished {what} runs")
    if not _has(r, *cols):
        return Check(claim, "not measurable", f"{what}: {' and '.join(cols)} not measured")
    return Check(claim, "agrees" if ok(r) else "differs", _shape(r))


def compare(table: pd.DataFrame) -> list[Check]:
    """Verdicts for each paper claim (table: analysis.frame.method_table of deploy/test/win_rate)."""
    methods = list(table.method) if len(table) else []
    rows = {m: _row(table, m) for m in methods}
    frozen = [rows[m] for m in ("coma", "qmix", "vdn") if m in rows]
    cc, cq, cv = rows.get("c-coma"), rows.get("c-qmix"), rows.get("c-vdn")
    paper_rows = [rows[m] for m in PAPER_METHODS if m in rows]  # controls (COMA-explore) are not the paper's
    checks = [
        _count("All methods drop when unseen situations begin", paper_rows,
               lambda r: r["pre"] - r["low"] >= DROP, "no method has data on both sides of the shift", ("pre", "low")),
        _count("Frozen methods (COMA, QMIX, VDN) do not recover", frozen,
               lambda r: r["final"] - r["low"] < RECOVER, "no frozen COMA/QMIX/VDN runs", ("low", "final")),
        _single("C-COMA recovers after the shift", cc, lambda r: r["final"] - r["low"] >= RECOVER, "C-COMA"),
        _single("C-COMA stalls at about 0.6 win rate", cc,
                lambda r: abs(r["final"] - CCOMA_LEVEL) <= CCOMA_TOL, "C-COMA", ("final",)),
        _single("C-QMIX stays near 0.1 win rate", cq, lambda r: r["final"] <= CQMIX_NEAR, "C-QMIX", ("final",)),
        _single("C-VDN does not improve after the shift", cv,
                lambda r: r["final"] - r["low"] < RECOVER, "C-VDN"),
    ]
    others = [r for r in (cq, cv) if _has(r, "final")]
    if not _has(cc, "final") or not others:
        checks.append(Check("C-COMA ends above C-QMIX and C-VDN", "not measurable",
                            "needs C-COMA and at least one of C-QMIX, C-VDN"))
    else:
        beaten = [r for r in others if cc["final"] > r["final"]]
        checks.append(Check("C-COMA ends above C-QMIX and C-VDN",
                            "agrees" if len(beaten) == len(others) else "differs" if not beaten else "partly",
                            ", ".join(f"{label(r['method'])} final {r['final']:.2f}" for r in [cc, *others])))
    frozen = [r for r in frozen if _has(r, "final")]
    if len(frozen) >= 2 and _has(rows.get("coma"), "final"):
        best = max(frozen, key=lambda r: r["final"])
        checks.append(Check("COMA is the best frozen method", "agrees" if best["method"] == "coma" else "differs",
                            ", ".join(f"{label(r['method'])} final {r['final']:.2f}" for r in frozen)))
    else:
        checks.append(Check("COMA is the best frozen method", "not measurable", "needs COMA and another frozen method"))
    return checks


DEFINITIONS = (f"Thresholds: a drop means pre-shift minus post-shift low >= {DROP:.2f}; a recovery means final "
               f"minus post-shift low >= {RECOVER:.2f}; 'about 0.6' means within +-{CCOMA_TOL:.2f}; 'near 0.1' "
               f"means final <= {CQMIX_NEAR:.2f}. Numbers read pre-shift -> post-shift low -> final.")
