"""Tracking: the only package of ccoma that imports mlflow.

    schema.py    mlflow-free: store URIs, experiment/model names, flattened params, metric keys, tidy frames
    store.py     the run store: :class:`Tracker` (one store: experiments, runs, artifacts), :class:`Run`
    registry.py  the model registry (``tracker.registry``): pyfunc policies, versions, the champion
    readback.py  runs and metrics read back as frames for reports (``tracker.reader``)

The public names are re-exported here and resolved lazily, so that ``ccoma.tracking.schema`` (and
``ccoma --help``) stay free of the MLflow import.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Tracker": "store", "Run": "store",
    "ModelRegistry": "registry", "PolicyModel": "registry", "list_models": "registry", "promote": "registry",
    "RunReader": "readback", "load_frame": "readback", "load_runs": "readback",
    "CHAMPION": "schema", "STATUSES": "schema", "FRAME_COLUMNS": "schema", "RUN_COLUMNS": "schema",
    "experiment_name": "schema", "model_name": "schema", "resolve_uri": "schema", "probe": "schema",
    "flatten_params": "schema", "parse_key": "schema",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ccoma.tracking' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ccoma.tracking.{_EXPORTS[name]}"), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
