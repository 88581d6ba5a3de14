"""analysis.cl: forward transfer against from-scratch reference runs, and the cl/ table, on hand-built frames."""
import pandas as pd
import pytest

from analysis import cl
from analysis.frame import ScenarioData, split_scenarios


def _rows(run_id, method, mode, algo, seed, key, points):
    return [{"scenario": "s", "run_id": run_id, "method": method, "mode": mode, "algo": algo, "seed": seed,
             "key": key, "step": st, "value": v, "namespace": key.split("/")[0], "phase": "", "metric": "",
             "status": "finished", "parent_run_id": "p"} for st, v in points]


def _data(with_reference=True) -> ScenarioData:
    # C-COMA on phase "new" (window from the shift at 100): 0.2 -> 0.6 over [100, 300], AUC 0.4
    rows = _rows("a", "c-coma", "continual", "coma", 0, "eval/new/win_rate", [(0, 0.1), (100, 0.2), (300, 0.6)])
    rows += _rows("a", "c-coma", "continual", "coma", 0, "cl/forgetting/old", [(300, 0.3)])
    rows += _rows("a", "c-coma", "continual", "coma", 0, "cl/recovered/unseen", [(300, 1.0)])
    rows += _rows("a", "c-coma", "continual", "coma", 0, "cl/recovery_steps/unseen", [(300, 120.0)])
    rows += _rows("b", "qmix", "frozen", "qmix", 0, "eval/new/win_rate", [(0, 0.1), (300, 0.1)])
    rows += _rows("b", "qmix", "frozen", "qmix", 0, "cl/recovered/unseen", [(300, 0.0)])
    runs = [{"scenario": "s", "kind": "evaluate", "method": "", "algo": "", "seed": None, "mode": "",
             "status": "finished", "run_id": "p", "unseen_from": 100, "params": {}},
            {"scenario": "s", "kind": "method", "method": "c-coma", "algo": "coma", "seed": 0, "mode": "continual",
             "status": "finished", "run_id": "a", "unseen_from": 100, "params": {}},
            {"scenario": "s", "kind": "method", "method": "qmix", "algo": "qmix", "seed": 0, "mode": "frozen",
             "status": "finished", "run_id": "b", "unseen_from": 100, "params": {}}]
    if with_reference:  # two from-scratch COMA references on "new", 200 steps; mean curve 0 -> 0.4, AUC 0.2
        for rid, seed, top in (("r0", 0, 0.3), ("r1", 1, 0.5)):
            rows += _rows(rid, "coma-reference", "reference", "coma", seed, "eval/new/win_rate", [(0, 0.0), (200, top)])
            runs.append({"scenario": "s", "kind": "method", "method": "coma-reference", "algo": "coma", "seed": seed,
                         "mode": "reference", "status": "finished", "run_id": rid, "unseen_from": 100,
                         "params": {"reference.phase": "new"}})
    return split_scenarios(pd.DataFrame(rows), pd.DataFrame(runs), {"s": "1"})["s"]


def test_forward_transfer_against_the_mean_reference():
    data = _data()
    assert set(data.metrics.method) == {"c-coma", "qmix"}                 # references kept apart
    ft = cl.forward_transfer(data)
    assert list(ft.method) == ["c-coma"]                                   # QMIX has no QMIX reference
    assert ft.ft.iloc[0] == pytest.approx((0.4 - 0.2) / (1 - 0.2))


def test_cl_table_reports_not_measured_without_references():
    header, rows, shifts = cl.cl_table(_data(with_reference=False))
    assert shifts == ["unseen"] and "forgetting old" in header
    table = {r[0]: dict(zip(header, r)) for r in rows}
    assert table["C-COMA"]["forward transfer"] == cl.NOT_MEASURED
    assert table["C-COMA"]["recovered unseen (runs; mean steps)"] == "1/1; 120"
    assert table["QMIX"]["recovered unseen (runs; mean steps)"] == "0/1"
    with_ref = {r[0]: dict(zip(header, r)) for r in cl.cl_table(_data())[1]}
    assert with_ref["C-COMA"]["forward transfer"] == "0.25" and with_ref["QMIX"]["forward transfer"] == cl.NOT_MEASURED
