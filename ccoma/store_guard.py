"""Keeping the MLflow store usable when things go wrong (used by :mod:`ccoma.tracking`; no mlflow import).

- :class:`Retrying` wraps a server's MlflowClient: outages are ridden out, a frozen server fails fast;
- :data:`OPEN_RUNS` and :func:`fail_open_runs`: no run outlives an error in RUNNING;
- :func:`literal`: a value safe to put in an MLflow search filter.
"""
from __future__ import annotations

import os
import time
from typing import Any

from ccoma.errors import CcomaError, excerpt


def literal(value: Any, what: str = "name") -> str:
    """``value`` as a quoted literal of an MLflow search filter. MLflow's filter language has no
    escape for quotes, so a value holding one (or a backslash) is refused rather than spliced in."""
    text = str(value)
    if any(c in text for c in "'\"\\`") or any(ord(c) < 32 for c in text):
        raise CcomaError(f"{what} {excerpt(text)}: quotes, backslashes and control characters are not allowed")
    return f"'{text}'"


def transport_failure(exc: BaseException) -> str | None:
    """'timeout' (a server that does not answer), 'down' (refused, reset, 502-504), or None."""
    text = str(exc)
    if "timed out" in text or "Timeout" in type(exc).__name__:
        return "timeout"
    signs = ("Connection refused", "Connection reset", "Connection aborted", "RemoteDisconnected",
             "Max retries exceeded", "NewConnectionError", "502", "503", "504", "Bad Gateway",
             "Service Unavailable", "Gateway Timeout")
    if isinstance(exc, ConnectionError) or any(sign in text for sign in signs):
        return "down"
    return None


class Retrying:
    """An MlflowClient for a server whose calls outlast short outages: a call that fails because the
    server is down (refused, reset, 502-504) is retried with backoff (1, 2, 4, 8, 10, 10... s) for
    ``$CCOMA_MLFLOW_RETRY_WINDOW`` seconds (default 90). A server that accepts but does not answer
    fails after the request timeout, ``$CCOMA_MLFLOW_TIMEOUT`` (default 20 s), without retries. Both
    end in one-line CcomaErrors; the job's metric points stay in its checkpoint for ``--resume``.
    Retried writes are idempotent: a metric point is keyed by (key, step, timestamp, value)."""

    def __init__(self, client: Any, uri: str):
        self._client, self._uri = client, uri
        self._window = float(os.environ.get("CCOMA_MLFLOW_RETRY_WINDOW", "90"))

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            deadline, delay = time.monotonic() + self._window, 1.0
            while True:
                try:
                    return attr(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - classified just below
                    kind = transport_failure(exc)
                    if kind is None:
                        raise
                    if kind == "timeout":
                        limit = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "?")
                        raise CcomaError(f"MLflow server {self._uri} did not answer within {limit} s "
                                         f"({name}); is it frozen? Points are kept for --resume") from None
                    if time.monotonic() + delay > deadline:
                        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
                        raise CcomaError(f"MLflow server {self._uri} unreachable for {self._window:g} s "
                                         f"({name}: {first}); points are kept for --resume") from None
                    time.sleep(delay)
                    delay = min(delay * 2, 10.0)
        return call


OPEN_RUNS: dict[str, Any] = {}  # runs this process opened (created or reopened) and has not finished


def reason_line(exc: BaseException | str | None) -> str:
    """One line saying why a run ended badly (the tag ``ccoma.error``)."""
    if exc is None:
        return "unknown error"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C or SIGTERM)"
    text = exc if isinstance(exc, str) else (str(exc) or type(exc).__name__)
    if not isinstance(exc, (str, CcomaError)):
        text = f"{type(exc).__name__}: {text}"
    text = " ".join(text.split())
    return text[:250]


def fail_open_runs(exc: BaseException | None, since: set[str] | None = None) -> None:
    """Mark FAILED (KILLED for Ctrl-C), with the reason, every run this process left open (all, or
    those opened after the ``since`` snapshot of OPEN_RUNS). Best effort: a store that is down
    must not hide the original error."""
    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    for run_id, run in list(OPEN_RUNS.items()):
        if since is not None and run_id in since:
            continue
        try:
            run.finish(status, exc)
        except Exception:  # noqa: BLE001 - reported by the caller's own error
            OPEN_RUNS.pop(run_id, None)
