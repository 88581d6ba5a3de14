"""The model registry: deployed policies as ``mlflow.pyfunc`` models, their versions and the champion.

Models are named ``ccoma-<scenario>-<method>`` (:func:`ccoma.tracking.schema.model_name`); each
version carries tags ``ccoma.scenario``, ``ccoma.method``, ``ccoma.run_id``, ``ccoma.deploy_win_rate``
and ``ccoma.seed``. The version with the best deployment win rate holds alias ``champion`` (latest on
ties) until someone promotes another by hand.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import mlflow
import mlflow.pyfunc

from ccoma.errors import CcomaError
from ccoma.store_guard import literal
from ccoma.tracking.schema import CHAMPION, model_name
from ccoma.tracking.store import _guarded

if TYPE_CHECKING:
    from ccoma.tracking.store import Run, Tracker

# MLflow warns (through its own "once" filter) that predict lacks type hints; hints would make it
# coerce our dict/DataFrame inputs, so the warning is recorded and dropped here.
with warnings.catch_warnings(record=True):
    class PolicyModel(mlflow.pyfunc.PythonModel):
        """A registered ccoma policy: ``predict`` turns observations into greedy actions.

        Input: a dict ``{"obs": [B, N, obs_dim], "avail": [B, N, n_actions] (optional, 0/1)}`` of arrays
        (or [B, T, N, ...] for whole episodes), or a pandas DataFrame with one row per environment and
        columns ``obs`` (each cell [N, obs_dim]) and optionally ``avail`` (each cell [N, n_actions]).
        Output: int64 numpy actions [B, N] (or [B, T, N]); unavailable actions are never chosen.
        """

        def load_context(self, context):
            from ccoma.serving import load_policy

            self._policy = load_policy(context.artifacts["policy"])

        def predict(self, context, model_input, params=None):
            import numpy as np

            if hasattr(model_input, "columns"):  # DataFrame: one environment per row
                obs = np.stack([np.asarray(v, dtype=np.float32) for v in model_input["obs"]])
                avail = (np.stack([np.asarray(v, dtype=np.float32) for v in model_input["avail"]])
                         if "avail" in model_input.columns else None)
            elif isinstance(model_input, Mapping):
                obs, avail = model_input["obs"], model_input.get("avail")
            else:
                raise CcomaError("predict input: expected a dict or DataFrame with 'obs' (and 'avail')")
            return self._policy(obs, avail)


class ModelRegistry:
    """The registered ccoma models of one store (``tracker.registry``)."""

    def __init__(self, tracker: "Tracker"):
        self.tracker = tracker
        self.client = tracker.client

    @_guarded
    def register(self, run: "Run", *, scenario: str, method: str, policy_dir: str | Path,
                 deploy_win_rate: float, seed: int | None = None) -> int:
        """Log ``policy_dir`` (see ccoma.serving.save_policy) as a pyfunc model of ``run`` and
        register it as ``ccoma-<scenario>-<method>``; re-elect the champion. Returns the version."""
        name = model_name(scenario, method)
        info = self._log_model(run, name, policy_dir)
        version = int(info.registered_model_version)
        tags = {"ccoma.scenario": scenario, "ccoma.method": method, "ccoma.run_id": run.run_id,
                "ccoma.deploy_win_rate": f"{float(deploy_win_rate):.6f}"}
        if seed is not None:
            tags["ccoma.seed"] = str(int(seed))
        for key, value in tags.items():
            self.client.set_model_version_tag(name, str(version), key, value)
        self.elect_champion(name)
        return version

    def _log_model(self, run: "Run", name: str, policy_dir: str | Path):
        import torch

        uri = self.tracker.uri
        # Model.log and registration use the global store; set it for this call only (mlflow also exports
        # it as $MLFLOW_TRACKING_URI / $MLFLOW_REGISTRY_URI, which every later subprocess would inherit)
        saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        quiet = logging.getLogger("mlflow.pyfunc")  # its cloudpickle advice is about foreign objects
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        # Created here so it lands in the run's experiment: Model.log alone would use the process's
        # active experiment (the store's Default one, with an artifact root relative to some old cwd).
        chatter = io.StringIO()  # "Successfully registered model ..." and the like, printed over the progress bar
        try:
            logged = self.client.create_logged_model(run.experiment_id, name="model", source_run_id=run.run_id)
            with contextlib.redirect_stderr(chatter):
                return mlflow.models.Model.log(
                    artifact_path=None, name="model", flavor=mlflow.pyfunc, run_id=run.run_id,
                    model_id=logged.model_id,
                    python_model=PolicyModel(), artifacts={"policy": str(policy_dir)},
                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "numpy", "pandas"],
                    registered_model_name=name, await_registration_for=60)
        finally:
            mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"])
            mlflow.set_registry_uri(saved["MLFLOW_REGISTRY_URI"])
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
            quiet.setLevel(level)
            for line in chatter.getvalue().splitlines():
                if line.strip() and not line.startswith(("Successfully registered model", "Created version",
                                                         "Registered model")):
                    print(line, file=sys.stderr)

    @_guarded
    def elect_champion(self, name: str) -> int | None:
        """Point alias ``champion`` at the version with the best deployment win rate (latest on ties)."""
        best = None
        for mv in self.client.search_model_versions(f"name = {literal(name, 'model')}"):
            rate = mv.tags.get("ccoma.deploy_win_rate")
            if rate is None:
                continue
            key = (float(rate), int(mv.version))
            best = key if best is None or key > best else best
        if best is not None:
            self.client.set_registered_model_alias(name, CHAMPION, str(best[1]))
        return None if best is None else best[1]

    @_guarded
    def list_models(self, scenario: str | None = None) -> list[dict[str, Any]]:
        """Every version of the ccoma models (of one scenario), with aliases and win rates."""
        pattern = model_name(scenario, "%") if scenario else "ccoma-%"
        rows = []
        prefix = pattern.rstrip("%")  # LIKE's '_' matches any character: keep exact prefixes only
        for rm in self.client.search_registered_models(f"name LIKE {literal(pattern, 'scenario')}"):
            if not rm.name.startswith(prefix):
                continue
            aliases: dict[str, list[str]] = {}
            for alias, version in (rm.aliases or {}).items():
                aliases.setdefault(str(version), []).append(alias)
            for mv in self.client.search_model_versions(f"name = {literal(rm.name, 'model')}"):
                rows.append({"name": rm.name, "version": int(mv.version),
                             "aliases": sorted(aliases.get(str(mv.version), [])),
                             "method": mv.tags.get("ccoma.method"), "seed": mv.tags.get("ccoma.seed"),
                             "deploy_win_rate": float(mv.tags.get("ccoma.deploy_win_rate", "nan")),
                             "run_id": mv.run_id, "created_ms": mv.creation_timestamp})
        return sorted(rows, key=lambda r: (r["name"], r["version"]))

    @_guarded
    def promote(self, name: str, version: int, alias: str = CHAMPION) -> None:
        """Point ``alias`` of registered model ``name`` at ``version``."""
        known = {int(mv.version) for mv in self.client.search_model_versions(f"name = {literal(name, 'model')}")}
        if int(version) not in known:
            have = ", ".join(map(str, sorted(known))) or "none"
            raise CcomaError(f"model {name} has no version {version} (versions: {have})")
        self.client.set_registered_model_alias(name, alias, str(int(version)))


def list_models(scenario: str | None = None, tracking_uri: str | None = None) -> list[dict[str, Any]]:
    from ccoma.tracking.store import Tracker

    if scenario:
        literal(model_name(scenario, "%"), "scenario")  # before a store is opened or created
    return Tracker(tracking_uri).registry.list_models(scenario)


def promote(name: str, version: int, alias: str = CHAMPION, tracking_uri: str | None = None) -> None:
    from ccoma.tracking.store import Tracker

    Tracker(tracking_uri).registry.promote(name, version, alias)
