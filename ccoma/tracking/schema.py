"""The mlflow-free half of ccoma.tracking: store URIs, names, params, metric keys, tidy frames.

Kept apart from :mod:`ccoma.tracking` (which owns every MLflow call) so that it can be tested and
reused without MLflow. See ccoma/tracking/store.py for the metric schema itself.
"""
from __future__ import annotations

import dataclasses
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterable, Mapping

from ccoma.errors import CcomaError

STATUSES = ("running", "finished", "failed", "interrupted")
CHAMPION = "champion"
PROBE_TIMEOUT_S = 3.0


def experiment_name(scenario: str) -> str:
    return f"ccoma/{scenario}"


def model_name(scenario: str, method: str) -> str:
    return f"ccoma-{scenario}-{method}"


def resolve_uri(tracking_uri: str | None = None) -> str:
    """The store to use: the argument, else $MLFLOW_TRACKING_URI, else ./mlflow.db (sqlite)."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    check_uri(uri)
    return uri.rstrip("/")


# Stores MLflow itself can open; anything else fails deep inside MLflow with a traceback.
URI_SCHEMES = ("sqlite", "http", "https", "file", "postgresql", "mysql", "mssql", "databricks")


def check_uri(uri: str) -> None:
    """A tracking URI with a known scheme (``sqlite:///path``, ``http(s)://host:port``...)."""
    from ccoma.errors import excerpt

    if "://" not in uri and ":" not in uri:
        return  # a plain path: MLflow's file store
    scheme, sep, rest = uri.partition(":")
    if scheme.split("+")[0].lower() not in URI_SCHEMES or not rest.strip("/"):
        raise CcomaError(f"--tracking-uri {excerpt(uri)}: expected sqlite:///PATH, http(s)://HOST:PORT or another "
                         f"MLflow store ({', '.join(URI_SCHEMES)})")
    if scheme == "sqlite" and not uri.startswith("sqlite:///"):
        raise CcomaError(f"--tracking-uri {excerpt(uri)}: a sqlite store is written sqlite:///PATH")


def probe(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail fast with one line when an HTTP tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # something answered: a server (or a proxy in front of one) is there
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CcomaError(f"MLflow server {uri} is unreachable ({reason}); start it or omit "
                         f"--tracking-uri to use ./mlflow.db") from None


def chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


MAX_PARAM_VAL_LENGTH = 6000  # mlflow.utils.validation.MAX_PARAM_VAL_LENGTH (checked in tests)

# Columns of the tidy metric frame (one row per logged point) and of the run table (one row per run).
FRAME_COLUMNS = ["scenario", "method", "algo", "seed", "mode", "namespace", "phase", "metric", "step",
                 "value", "key", "status", "run_id", "parent_run_id"]
RUN_COLUMNS = ["scenario", "kind", "method", "algo", "seed", "mode", "status", "mlflow_status",
               "run_id", "parent_run_id", "start_time", "backend", "budget", "run_key", "unseen_from",
               "train_steps", "deploy_steps", "recovered", "tags", "params"]
_MLFLOW_TO_STATUS = {"RUNNING": "running", "SCHEDULED": "running", "FINISHED": "finished",
                     "FAILED": "failed", "KILLED": "interrupted"}


def flatten_params(params: Mapping[str, Any] | Any, prefix: str = "") -> dict[str, str]:
    """Nested mappings/dataclasses -> {"a.b.c": str(value)} truncated to MLflow's value limit."""
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        params = dataclasses.asdict(params)
    out: dict[str, str] = {}
    for key, value in dict(params).items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
            out.update(flatten_params(value, name + "."))
        else:
            out[name] = str(value)[:MAX_PARAM_VAL_LENGTH]
    return out


def parse_key(key: str) -> tuple[str, str, str]:
    """Metric key -> (namespace, phase, metric).

    ``eval/p1/win_rate`` -> ("eval", "p1", "win_rate"); ``cl/forgetting/p1`` -> ("cl", "p1",
    "forgetting"); ``deploy/loss/critic`` -> ("deploy", "", "loss/critic").
    """
    parts = key.split("/")
    if len(parts) == 1:
        return "", "", key
    ns = parts[0]
    if ns == "eval" and len(parts) >= 3:
        return ns, parts[1], "/".join(parts[2:])
    if ns == "cl" and len(parts) >= 3 and parts[1] in ("forgetting", "recovery_steps"):
        return ns, "/".join(parts[2:]), parts[1]
    return ns, "", "/".join(parts[1:])


def _int_or_none(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def run_row(scenario: str, info: Mapping[str, Any]) -> dict[str, Any]:
    """A run table row from plain run facts: run_id, mlflow_status, start_time, tags, params."""
    tags, params = dict(info["tags"]), dict(info["params"])
    recovered = {k[len("ccoma.recovered."):]: v.lower() == "true"
                 for k, v in tags.items() if k.startswith("ccoma.recovered.")}
    mstatus = info["mlflow_status"]
    return {
        "scenario": scenario, "kind": tags.get("ccoma.kind", ""), "method": tags.get("ccoma.method", ""),
        "algo": tags.get("ccoma.algo", ""), "seed": _int_or_none(tags.get("ccoma.seed")),
        "mode": tags.get("ccoma.mode", ""),
        "status": tags.get("ccoma.status") or _MLFLOW_TO_STATUS.get(mstatus, mstatus.lower()),
        "mlflow_status": mstatus, "run_id": info["run_id"],
        "parent_run_id": tags.get("mlflow.parentRunId", ""), "start_time": info["start_time"],
        "backend": tags.get("ccoma.backend", ""), "budget": tags.get("ccoma.budget", ""),
        "run_key": tags.get("ccoma.run_key", ""),
        "unseen_from": _int_or_none(params.get("protocol.unseen_from")),
        "train_steps": _int_or_none(params.get("budget.train_steps")),
        "deploy_steps": _int_or_none(params.get("budget.deploy_steps")),
        "recovered": recovered, "tags": tags, "params": params,
    }


def metric_rows(run: Mapping[str, Any], history: Mapping[str, Iterable[tuple[int, float]]]) -> list[dict]:
    """Tidy rows of one run (a :func:`run_row`) from {key: [(step, value), ...]}."""
    base = {k: run[k] for k in ("scenario", "method", "algo", "seed", "mode", "status", "run_id",
                                "parent_run_id")}
    rows = []
    for key, points in history.items():
        ns, phase, metric = parse_key(key)
        for step, value in points:
            rows.append({**base, "namespace": ns, "phase": phase, "metric": metric, "step": int(step),
                         "value": float(value), "key": key})
    return rows


def frame(rows: list[dict], columns: list[str]):
    """A DataFrame with exactly ``columns`` (empty but typed when there are no rows)."""
    import pandas as pd

    df = pd.DataFrame(rows, columns=columns)
    for col in ("seed", "unseen_from", "train_steps", "deploy_steps"):
        if col in df.columns:  # nullable: parents have no seed, old runs may lack a param
            df[col] = df[col].astype("Int64")
    if "step" in df.columns:
        df["step"] = df["step"].astype("int64")
        df["value"] = df["value"].astype("float64")
    return df
