"""Reading tracked runs back for reports: the run table and the tidy metric frame.

Reading never creates anything in the store: a scenario without an experiment simply has no rows.
The frames' columns are :data:`ccoma.tracking.schema.RUN_COLUMNS` and ``FRAME_COLUMNS``.
"""
from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Iterable

from ccoma.store_guard import literal
from ccoma.tracking import schema
from ccoma.tracking.store import _guarded

if TYPE_CHECKING:
    from ccoma.tracking.store import Tracker


class RunReader:
    """Runs and metrics of one store, as pandas frames (``tracker.reader``)."""

    def __init__(self, tracker: "Tracker"):
        self.tracker = tracker
        self.client = tracker.client

    @_guarded
    def experiments(self, scenarios: str | Iterable[str]) -> dict[str, str | None]:
        """scenario -> experiment id, None where the store has no experiment for it."""
        return {s: self.tracker.experiment_id(s, create=False) for s in _as_list(scenarios)}

    def _collect(self, scenarios: str | Iterable[str], parent: str) -> list[dict[str, Any]]:
        # parent: "latest" (the most recent evaluate of each scenario), "all", or a parent run id
        search = self.tracker._search
        rows = []
        for scenario, exp_id in self.experiments(scenarios).items():
            if exp_id is None:
                continue
            if parent in ("latest", "all"):
                parents = search([exp_id], "tags.`ccoma.kind` = 'evaluate'")
                if parent == "latest" and any(_usable(r) for r in parents):
                    # newer failed or dangling evaluates are skipped (and named in the report); with no
                    # complete one at all, the newest is used as it is (e.g. one still in progress)
                    newer = list(itertools.takewhile(lambda r: not _usable(r), parents))
                    self.tracker.skipped_parents.update({r.info.run_id: (scenario, _status(r)) for r in newer})
                    parents = parents[len(newer):len(newer) + 1]
                elif parent == "latest":
                    parents = parents[:1]
            else:
                parents = [r for r in search([exp_id], "tags.`ccoma.kind` = 'evaluate'")
                           if r.info.run_id == parent]
            for p in parents:
                children = search([exp_id], f"tags.mlflow.parentRunId = {literal(p.info.run_id)}")
                for run in [p, *reversed(children)]:
                    row = schema.run_row(scenario, {
                        "run_id": run.info.run_id, "mlflow_status": run.info.status,
                        "start_time": run.info.start_time, "tags": run.data.tags,
                        "params": run.data.params})
                    row["_metric_keys"] = sorted(run.data.metrics)
                    rows.append(row)
        return rows

    @_guarded
    def load_runs(self, scenarios: str | Iterable[str], parent: str = "latest"):
        """One row per run (parents and children), columns ``schema.RUN_COLUMNS``."""
        return schema.frame(self._collect(scenarios, parent), schema.RUN_COLUMNS)

    @_guarded
    def load_frame(self, scenarios: str | Iterable[str], parent: str = "latest"):
        """Tidy metrics: one row per logged point, columns ``schema.FRAME_COLUMNS``
        (scenario, method, algo, seed, mode, namespace, phase, metric, step, value, key, status,
        run_id, parent_run_id). ``parent``: "latest" evaluate per scenario, "all", or a run id."""
        runs = self._collect(scenarios, parent)
        jobs = [(run, key) for run in runs for key in run["_metric_keys"]]

        def history(job):
            run, key = job
            return [(m.step, m.value) for m in self.client.get_metric_history(run["run_id"], key)]

        rows = []
        for (run, key), points in zip(jobs, self.tracker._map(history, jobs)):
            rows.extend(schema.metric_rows(run, {key: points}))
        return schema.frame(rows, schema.FRAME_COLUMNS)


def _status(run: Any) -> str:
    return run.data.tags.get("ccoma.status") or run.info.status.lower()


def _usable(parent: Any) -> bool:
    """An evaluate that ran its grid to the end (even with some failed jobs). A run still RUNNING
    (dangling: killed, or in progress), interrupted, or failed before its jobs ended is not."""
    status = _status(parent)
    if parent.info.status == "RUNNING" or status in ("running", "interrupted"):
        return False
    return status == "finished" or "ccoma.failed_jobs" in parent.data.tags


def _as_list(scenarios: str | Iterable[str]) -> list[str]:
    return [scenarios] if isinstance(scenarios, str) else list(scenarios)


def load_frame(scenarios: str | Iterable[str], tracking_uri: str | None = None, parent: str = "latest"):
    """Tidy metrics frame of ``scenarios`` (see :meth:`RunReader.load_frame`)."""
    from ccoma.tracking.store import Tracker

    return Tracker(tracking_uri).reader.load_frame(scenarios, parent=parent)


def load_runs(scenarios: str | Iterable[str], tracking_uri: str | None = None, parent: str = "latest"):
    """One row per run of ``scenarios`` (see :meth:`RunReader.load_runs`)."""
    from ccoma.tracking.store import Tracker

    return Tracker(tracking_uri).reader.load_runs(scenarios, parent=parent)
