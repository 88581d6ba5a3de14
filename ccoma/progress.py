"""Step-level progress of running jobs, for the progress bars of ``evaluate``, ``train`` and ``deploy``.

A job writes ``<job dir>/progress.json`` (env steps done over all its stages, and their total) after
every chunk. The command's bar reads those files: a thread of its own re-reads them every
``interval`` seconds, so it moves for jobs in the local process pool, on Ray on this machine and in the
command's own process alike (no hooks, no shared state). Jobs on a remote Ray cluster write their
files there; the bar then moves only as those jobs finish.
"""
from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path


def report(path: Path, done: int, total: int) -> None:
    """Record a job's progress (atomically: a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"done": int(done), "total": int(total)}))
    os.replace(tmp, path)


def read(path: Path) -> int:
    """Steps a job has done so far, 0 when it has not reported yet."""
    try:
        return int(json.loads(path.read_text())["done"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


class StepBar:
    """A click progress bar over the env steps of several jobs: ``{progress file: total steps}``."""

    def __init__(self, jobs: dict[Path, int], label: str = "steps", interval: float = 1.0):
        import click

        self.jobs = jobs
        self.finished: set[Path] = set()
        self.shown = 0
        self.interval = interval
        self.bar = click.progressbar(length=max(1, sum(jobs.values())), label=label, show_eta=True,
                                     show_percent=True, file=sys.stderr)
        self._lock = threading.Lock()        # the refresher thread and the command both refresh
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="ccoma-step-bar", daemon=True)

    def __enter__(self) -> "StepBar":
        self.bar.__enter__()
        self.refresh()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.bar.__exit__(*exc)

    def _poll(self) -> None:
        # A job in the command's own process blocks the command until it ends: reading its file
        # from here keeps the bar moving meanwhile.
        while not self._stop.wait(self.interval):
            self.refresh()

    def finish(self, path: Path) -> None:
        """A job ended (done or failed): it counts in full from now on."""
        self.finished.add(path)
        self.refresh()

    def refresh(self) -> None:
        with self._lock:
            done = sum(total if p in self.finished else min(read(p), total) for p, total in self.jobs.items())
            if done > self.shown:
                self.bar.update(done - self.shown)
                self.shown = done
