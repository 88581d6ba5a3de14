"""The run store: experiments, runs, params, metrics and artifacts of one MLflow store.

The model registry is :mod:`ccoma.tracking.registry` (``tracker.registry``), the read-back for reports
:mod:`ccoma.tracking.readback` (``tracker.reader``); only this package imports mlflow.

Store. ``Tracker(tracking_uri=None)``: ``tracking_uri`` argument, else ``$MLFLOW_TRACKING_URI``, else
``sqlite:///<cwd>/mlflow.db`` with artifacts under ``<db dir>/mlruns``. An ``http(s)://`` server is
probed (``GET /health``, 3 s) before anything else; an unreachable one is a one-line CcomaError.

Layout. One experiment per scenario, ``ccoma/<scenario>``. One parent run per ``evaluate``
(tags ``ccoma.kind=evaluate``, ``ccoma.scenario``, ``ccoma.backend`` e.g. "ccoma-sim 1.0",
``ccoma.budget``, ``ccoma.run_key``, ``ccoma.status``), found again by its run key. One child run per
(method, seed) (tags ``ccoma.kind=method``, ``ccoma.method`` e.g. ``c-coma``, ``ccoma.algo`` (the
learner), ``ccoma.mode`` frozen|continual|frozen-explore|reference, ``ccoma.seed``, ``ccoma.status``
running|finished|failed|interrupted). Params: the resolved config flattened (``a.b.c``), including
``protocol.unseen_from``, ``budget.train_steps``, ``budget.deploy_steps``.

Metric schema (every point has an explicit step):

=================================  ==================================================================
``train/win_rate``, ``train/return``  rolling over the last 30 training episodes; step = training env steps
``train/loss/<name>``                 learner losses; step = training env steps
``train/test/win_rate|return``        greedy test episodes from training's distribution (the learning
                                      curve; ``Budget.train_test_points``); step = training env steps
``deploy/win_rate``, ``deploy/return`` online, last 30 deployment episodes; step = deployment env steps
``deploy/test/win_rate|return``       the headline: greedy test episodes from the deployment's current
                                      distribution, the same for every method; step = deployment env steps
``deploy/loss/<name>``                losses of continual updates; step = deployment env steps
``eval/<phase>/win_rate|return``      greedy evaluation on a phase's distribution; step = deployment env
                                      step when it ran (0 = end of training)
``cl/avg_performance``, ``cl/bwt``,   continual-learning summaries (docs/metrics.md); step = last deployment
``cl/forgetting/<phase>``,            step; recovery on the greedy test series; ``cl/recovery_steps/<shift>``
``cl/recovered/<shift>``, ...         absent when never recovered: tag ``ccoma.recovered.<shift>=false``
=================================  ==================================================================

A step is one agent-decision step of all environments counted per environment (env steps summed over
parallel envs, pymarl's ``t_env``). Artifacts go under ``config/``, ``scenario/``, ``checkpoints/``,
``figures/``, ``report/``, ``renders/``. Deployed models are registered as ``ccoma-<scenario>-<method>``
(pyfunc, see :class:`ccoma.tracking.registry.PolicyModel`); the best version by mean greedy test win rate holds alias ``champion``.
"""
from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH, MAX_TAG_VAL_LENGTH

from ccoma.errors import CcomaError, excerpt
from ccoma.store_guard import OPEN_RUNS, Retrying, literal, reason_line
from ccoma.tracking.schema import STATUSES, chunks, experiment_name, flatten_params, probe, resolve_uri

if TYPE_CHECKING:
    from ccoma.tracking.readback import RunReader
    from ccoma.tracking.registry import ModelRegistry

_MLFLOW_STATUS = {"running": "RUNNING", "finished": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}


def _guarded(fn):
    """MLflow/transport failures at the façade boundary become one-line CcomaErrors."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CcomaError:
            raise
        except (MlflowException, ConnectionError, OSError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise CcomaError(f"MLflow: {fn.__name__}: {first}") from None
    return wrapper


def _migrated_client(uri: str) -> MlflowClient:
    """A client whose tracking and registry stores exist (both create or upgrade the schema)."""
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_experiments(max_results=1)
    client.search_registered_models(max_results=1)
    return client


def _template_path() -> Path | None:
    """Where an empty store migrated by this MLflow is kept (None when ``$CCOMA_STORE_TEMPLATE`` is 0):
    ``$CCOMA_CACHE_DIR``, else ``$XDG_CACHE_HOME/ccoma``, else ``~/.cache/ccoma``, one file per version of
    MLflow, SQLAlchemy, alembic and SQLite (the migrations' outcome depends on nothing else)."""
    if os.environ.get("CCOMA_STORE_TEMPLATE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    import sqlite3

    import alembic
    import mlflow
    import sqlalchemy

    from ccoma.cache import cache_dir

    key = f"mlflow{mlflow.__version__}-sqlalchemy{sqlalchemy.__version__}-alembic{alembic.__version__}" \
          f"-sqlite{sqlite3.sqlite_version}"
    return cache_dir() / f"empty-store-{key}.db"


def _new_store(tmp: Path) -> None:
    """Build a new sqlite store at ``tmp``: a copy of the migrated empty store this MLflow made before
    (~0.05 s), else MLflow's own migrations (~2-5 s), whose result is then kept as that template. The
    template holds every table and no experiment: opening the copy creates experiment 0 ("Default")
    with this store's own artifact location, as a fresh migration does."""
    import shutil

    template = _template_path()
    if template is not None and template.is_file():
        try:
            shutil.copyfile(template, tmp)
            _migrated_client(f"sqlite:///{tmp}")  # checks the schema is MLflow's head; adds Default
            return
        except Exception:  # noqa: BLE001 - a damaged template: migrate as if there were none
            template.unlink(missing_ok=True)
            fresh = tmp.with_name(tmp.name + "-migrated")  # not the URI MLflow may hold an engine for
            _migrated_client(f"sqlite:///{fresh}")
            os.replace(fresh, tmp)
    else:
        _migrated_client(f"sqlite:///{tmp}")
    if template is not None:
        _keep_template(tmp, template)


def _keep_template(store: Path, template: Path) -> None:
    """Keep a copy of the just-migrated ``store`` without its Default experiment as ``template``. Best
    effort: a read-only home only costs the next new store its migrations."""
    import shutil
    import sqlite3

    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        part = template.with_name(f"{template.name}.part-{os.getpid()}")
        shutil.copyfile(store, part)
        con = sqlite3.connect(part)
        try:
            with con:
                con.execute("DELETE FROM experiments WHERE experiment_id = 0")
        finally:
            con.close()
        os.replace(part, template)
    except (OSError, sqlite3.Error):
        pass


def _now_ms() -> int:
    return int(time.time() * 1000)


class Run:
    """One MLflow run (parent or child) opened through :class:`Tracker`.

    ``last_steps`` maps each metric key to its last logged step (resume: the harness continues after
    it; points at or before a key's last step are dropped, so re-logging is harmless).
    """

    def __init__(self, tracker: "Tracker", run: Any, resumed: bool):
        self.tracker = tracker
        self.run_id: str = run.info.run_id
        self.experiment_id: str = run.info.experiment_id
        self.tags: dict[str, str] = dict(run.data.tags)
        self.params: dict[str, str] = dict(run.data.params)
        self.resumed = resumed
        self.previous_status = self.tags.get("ccoma.status")
        self.last_steps: dict[str, int] = tracker._last_steps(run)

    @property
    def client(self) -> MlflowClient:
        return self.tracker.client

    @_guarded
    def log_params(self, params: Mapping[str, Any] | Any) -> None:
        """Log a (nested) config; a key already logged with another value is an error."""
        flat = flatten_params(params)
        clash = [k for k, v in flat.items() if k in self.params and self.params[k] != v]
        if clash:
            k = clash[0]
            raise CcomaError(f"run {self.run_id} already has param {k}={excerpt(self.params[k])}, not "
                             f"{excerpt(flat[k])}: the config changed, use a new run key")
        new = [Param(k, v) for k, v in sorted(flat.items()) if k not in self.params]
        for chunk in chunks(new, MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(self.run_id, params=chunk)
        self.params.update(flat)

    @_guarded
    def set_tags(self, tags: Mapping[str, Any]) -> None:
        items = [RunTag(k, str(v)[:MAX_TAG_VAL_LENGTH]) for k, v in tags.items()]
        for chunk in chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(self.run_id, tags=chunk)
        self.tags.update({t.key: t.value for t in items})

    def log_metrics(self, values: Mapping[str, float], step: int) -> int:
        """Log several metrics at one step; returns how many points were written."""
        return self.log_series((k, v, step) for k, v in values.items())

    @_guarded
    def log_series(self, points: Iterable[tuple[str, float, int]]) -> int:
        """Log (key, value, step) points in batches of <= 1000; already-logged steps are skipped."""
        ts = _now_ms()
        fresh = []
        for key, value, step in points:
            step = int(step)
            if step <= self.last_steps.get(key, -1):
                continue
            fresh.append(Metric(key, float(value), ts, step))
            self.last_steps[key] = step
        for chunk in chunks(fresh, MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=chunk)
        return len(fresh)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Log a file or a whole directory under ``artifact_path`` (e.g. "figures", "renders")."""
        self.tracker.log_artifact(self.run_id, path, artifact_path)

    @_guarded
    def finish(self, status: str = "finished", reason: BaseException | str | None = None) -> None:
        """End the run. A failed or interrupted run gets tag ``ccoma.error``: the one-line reason,
        by default the exception being handled when this is called (``except ...: run.finish("failed")``)."""
        if status not in STATUSES or status == "running":
            raise CcomaError(f"run status must be finished, failed or interrupted, not {excerpt(status)}")
        tags = {"ccoma.status": status}
        if status != "finished":
            if reason is None:
                reason = sys.exc_info()[1]
            if reason is None and "ccoma.failed_jobs" in self.tags:
                reason = f"{self.tags['ccoma.failed_jobs']} job(s) failed"
            tags["ccoma.error"] = reason_line(reason)
        self.set_tags(tags)
        self.client.set_terminated(self.run_id, _MLFLOW_STATUS[status])
        OPEN_RUNS.pop(self.run_id, None)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish("finished")
        else:
            self.finish("interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed", exc)


class Tracker:
    """Typed access to one MLflow store (see the module docstring for the layout)."""

    def __init__(self, tracking_uri: str | None = None):
        self.uri = resolve_uri(tracking_uri)
        self.skipped_parents: dict[str, tuple[str, str]] = {}  # run id -> (scenario, status): see _collect
        self.remote = self.uri.startswith(("http://", "https://"))
        # ccoma retries a server itself (_Retrying): MLflow's own retries would multiply with ours
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", os.environ.get("CCOMA_MLFLOW_TIMEOUT", "20"))
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        probe(self.uri)
        if self.uri.startswith("sqlite:///"):
            self.client = self._open_sqlite(Path(self.uri[len("sqlite:///"):]))
        else:
            self.client = Retrying(MlflowClient(tracking_uri=self.uri, registry_uri=self.uri), self.uri)

    @_guarded
    def _open_sqlite(self, db: Path) -> MlflowClient:
        """Open the client under a file lock (two commands started together on a new mlflow.db would
        both run MLflow's migrations, and the loser fails inside alembic). A new store is built in a
        temporary file and renamed into place: a kill during its ~2-5 s of migrations leaves no
        half-migrated mlflow.db behind, only a temporary file that the next command deletes. The
        migrations run once per MLflow version; later new stores copy their result (_new_store)."""
        import fcntl

        try:
            db.parent.mkdir(parents=True, exist_ok=True)
            lock = open(db.with_name(db.name + ".lock"), "a")
        except OSError as exc:
            raise CcomaError(f"MLflow store {db}: cannot create it ({exc.strerror})") from None
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                for stale in db.parent.glob(db.name + ".creating-*"):  # left by a killed first set-up
                    stale.unlink(missing_ok=True)
                if not db.exists() or db.stat().st_size == 0:
                    tmp = db.with_name(f"{db.name}.creating-{os.getpid()}")
                    _new_store(tmp)
                    os.replace(tmp, db)
                return _migrated_client(self.uri)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _artifact_location(self) -> str | None:
        if self.uri.startswith("sqlite:///"):
            return (Path(self.uri[len("sqlite:///"):]).parent / "mlruns").resolve().as_uri()
        return None  # a server decides (proxied mlflow-artifacts:)

    # ---- experiments and runs -------------------------------------------------------------
    @_guarded
    def experiment_id(self, scenario: str, create: bool = True) -> str | None:
        exp = self.client.get_experiment_by_name(experiment_name(scenario))
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            return exp.experiment_id
        if not create:
            return None
        return self.client.create_experiment(experiment_name(scenario), self._artifact_location())

    def _search(self, experiment_ids: list[str], filter_string: str) -> list:
        runs, token = [], None
        while True:
            page = self.client.search_runs(experiment_ids, filter_string, max_results=1000,
                                           order_by=["attributes.start_time DESC"], page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def _last_steps(self, run: Any) -> dict[str, int]:
        keys = list(run.data.metrics)

        def last(key: str) -> int:
            return max(m.step for m in self.client.get_metric_history(run.info.run_id, key))

        return dict(zip(keys, self._map(last, keys)))

    def _map(self, fn, items: list) -> list:
        # A server answers one request per metric: overlap them; sqlite gains nothing from threads.
        if not self.remote or len(items) < 4:
            return [fn(x) for x in items]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(fn, items))

    def _reopen(self, run: Any) -> Any:
        if "ccoma.error" in run.data.tags:  # the earlier failure's reason no longer applies
            self.client.delete_tag(run.info.run_id, "ccoma.error")
        self.client.update_run(run.info.run_id, status="RUNNING")
        self.client.set_tag(run.info.run_id, "ccoma.status", "running")
        return self.client.get_run(run.info.run_id)

    @_guarded
    def evaluate_run(self, scenario: str, run_key: str, *, backend: str, budget: str,
                     params: Mapping[str, Any] | Any = None, tags: Mapping[str, str] | None = None) -> Run:
        """Open (or reopen, by ``run_key``) the parent run of one ``evaluate`` of ``scenario``."""
        exp_id = self.experiment_id(scenario)
        found = self._search([exp_id], f"tags.`ccoma.run_key` = {literal(run_key, 'run key')} and tags.`ccoma.kind` = 'evaluate'")
        if found:
            before = found[0].data.tags.get("ccoma.status")
            run = Run(self, self._reopen(found[0]), resumed=True)
            run.previous_status = before
            OPEN_RUNS[run.run_id] = run
        else:
            all_tags = {"ccoma.kind": "evaluate", "ccoma.scenario": scenario, "ccoma.backend": backend,
                        "ccoma.budget": budget, "ccoma.run_key": run_key, "ccoma.status": "running"}
            created = self.client.create_run(exp_id, tags=all_tags, run_name=f"evaluate-{scenario}")
            run = Run(self, created, resumed=False)
            OPEN_RUNS[run.run_id] = run
        if tags:
            run.set_tags(tags)
        if params is not None:
            run.log_params(params)
        return run

    @_guarded
    def open_run(self, run_id: str) -> Run:
        """An existing run by id, as it is (status untouched): e.g. a job's parent ``evaluate`` run."""
        return Run(self, self.client.get_run(run_id), resumed=True)

    @_guarded
    def find_method_run(self, parent: Run, method: str, seed: int) -> Run | None:
        """The child run of (method, seed) under ``parent``, untouched (None when absent)."""
        found = self._search([parent.experiment_id], f"tags.mlflow.parentRunId = {literal(parent.run_id)} and "
                             f"tags.`ccoma.method` = {literal(method, 'method')} and tags.`ccoma.seed` = '{int(seed)}'")
        return Run(self, found[0], resumed=True) if found else None

    @_guarded
    def method_run(self, parent: Run, *, method: str, algo: str, mode: str, seed: int,
                   params: Mapping[str, Any] | Any = None) -> Run:
        """Open (or reopen) the child run of one (method, seed); its status becomes running."""
        if mode not in ("frozen", "continual", "frozen-explore", "reference"):
            raise CcomaError(f"mode must be frozen, continual, frozen-explore or reference, not {excerpt(mode)}")
        existing = self.find_method_run(parent, method, seed)
        if existing is not None:
            run = Run(self, self._reopen(self.client.get_run(existing.run_id)), resumed=True)
            run.previous_status = existing.previous_status
            OPEN_RUNS[run.run_id] = run
        else:
            tags = {"mlflow.parentRunId": parent.run_id, "ccoma.kind": "method",
                    "ccoma.scenario": parent.tags.get("ccoma.scenario", ""),
                    "ccoma.run_key": parent.tags.get("ccoma.run_key", ""), "ccoma.method": method,
                    "ccoma.algo": algo, "ccoma.mode": mode, "ccoma.seed": str(int(seed)),
                    "ccoma.status": "running"}
            created = self.client.create_run(parent.experiment_id, tags=tags, run_name=f"{method}-seed{seed}")
            run = Run(self, created, resumed=False)
            OPEN_RUNS[run.run_id] = run
        if params is not None:
            run.log_params(params)
        return run

    @_guarded
    def close_orphans(self, parent: Run, status: str, reason: str) -> list[str]:
        """Mark ``status`` (failed or interrupted), with ``reason``, every child run of ``parent`` still
        RUNNING: called by a command once its workers are gone, for the runs a worker could not close
        itself (killed after its grace period, killed by the system, or stopped by Ray). Returns their ids."""
        if status not in ("failed", "interrupted"):
            raise CcomaError(f"an orphaned run is failed or interrupted, not {excerpt(status)}")
        found = self._search([parent.experiment_id], f"tags.mlflow.parentRunId = {literal(parent.run_id)} and "
                             "attributes.status = 'RUNNING'")
        for run in found:
            rid = run.info.run_id
            self.client.log_batch(rid, tags=[RunTag("ccoma.status", status),
                                             RunTag("ccoma.error", reason_line(reason))])
            self.client.set_terminated(rid, _MLFLOW_STATUS[status])
            OPEN_RUNS.pop(rid, None)
        return [r.info.run_id for r in found]

    @_guarded
    def log_artifact(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        """Log a file or a whole directory into run ``run_id`` under ``artifact_path``."""
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(run_id, str(path), artifact_path)
        elif path.is_file():
            self.client.log_artifact(run_id, str(path), artifact_path)
        else:
            raise CcomaError(f"{path}: no such file or directory to log")

    @_guarded
    def download_artifacts(self, run_id: str, path: str, dst: str | Path) -> Path | None:
        """Copy a run's artifact file/directory into ``dst``; None when the run has nothing there."""
        if not self.client.list_artifacts(run_id, path):
            return None
        Path(dst).mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(run_id, path, str(dst)))

    # ---- the other two parts of the store ---------------------------------------------------
    @functools.cached_property
    def registry(self) -> "ModelRegistry":
        """The model registry of this store (:class:`ccoma.tracking.registry.ModelRegistry`)."""
        from ccoma.tracking.registry import ModelRegistry

        return ModelRegistry(self)

    @functools.cached_property
    def reader(self) -> "RunReader":
        """Runs and metrics read back as frames (:class:`ccoma.tracking.readback.RunReader`)."""
        from ccoma.tracking.readback import RunReader

        return RunReader(self)
