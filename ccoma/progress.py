"""Step-level progress of running jobs, for the progress bars of ``evaluate``, ``train`` and ``deploy``.

A job writes ``<job dir>/progress.json`` (env steps done over all its stages, and their total) after
every chunk. The command's bar reads those files while it waits for jobs: that covers the local
process pool and Ray on this machine. A job running in the command's own process also calls the
hooks registered here, so the bar moves without polling. Jobs on a remote Ray cluster write their
files there; the bar then moves only as those jobs finish.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Callable

HOOKS: list[Callable[[], None]] = []   # called after every chunk of an in-process job


def report(path: Path, done: int, total: int) -> None:
    """Record a job's progress (atomically: a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"done": int(done), "total": int(total)}))
    os.replace(tmp, path)
    for hook in HOOKS:
        hook()


def read(path: Path) -> int:
    """Steps a job has done so far, 0 when it has not reported yet."""
    try:
        return int(json.loads(path.read_text())["done"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


class StepBar:
    """A click progress bar over the env steps of several jobs: ``{progress file: total steps}``."""

    def __init__(self, jobs: dict[Path, int], label: str = "steps"):
        import click

        self.jobs = jobs
        self.finished: set[Path] = set()
        self.shown = 0
        self.bar = click.progressbar(length=max(1, sum(jobs.values())), label=label, show_eta=True,
                                     show_percent=True, file=sys.stderr)

    def __enter__(self) -> "StepBar":
        self.bar.__enter__()
        HOOKS.append(self.refresh)
        self.refresh()
        return self

    def __exit__(self, *exc) -> None:
        HOOKS.remove(self.refresh)
        self.bar.__exit__(*exc)

    def finish(self, path: Path) -> None:
        """A job ended (done or failed): it counts in full from now on."""
        self.finished.add(path)
        self.refresh()

    def refresh(self) -> None:
        done = sum(total if p in self.finished else min(read(p), total) for p, total in self.jobs.items())
        if done > self.shown:
            self.bar.update(done - self.shown)
            self.shown = done
