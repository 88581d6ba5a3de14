"""The composition root: ``evaluate`` = every (method, seed) of a scenario -> train -> deploy -> report.

``evaluate(cfg)`` opens the parent MLflow run, logs the resolved config and scenario, hands one job
per (learner, seed) to an executor (a learner trains once; its frozen and continual deployments
start from the same trained weights), and writes the comparison report at the end.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import click

from ccoma.envs import check as check_backend
from ccoma.envs import describe
from ccoma.errors import CcomaError
from ccoma.run_config import RunConfig, check_device, jobs
from ccoma.tracking.schema import flatten_params

BACKEND = describe("sim")  # the default backend's label; a run's own is describe(cfg.backend)


def config_hash(cfg: RunConfig) -> str:
    """A short hash of everything that shapes the results (not where they are logged)."""
    data = dataclasses.asdict(dataclasses.replace(cfg, tracking_uri="", run_dir="", executor="local", workers=0,
                                                  ray_address="", report=True))
    if data["threads"] == 1:  # the default (and the only setting before it existed): earlier runs keep their hash
        del data["threads"]
    if not data["fused_gru"]:  # likewise the default unroll
        del data["fused_gru"]
    if not data["budget"]["train_test_points"]:  # likewise no test points in training (before they existed)
        del data["budget"]["train_test_points"]
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _run_key(cfg: RunConfig, resume: bool) -> str:
    h = config_hash(cfg)
    marker = Path(cfg.run_dir) / f"latest-{cfg.scenario.replace('/', '_')}-{h}.txt"
    if resume:
        if not marker.exists():
            raise CcomaError(f"--resume: no earlier run of this configuration under {cfg.run_dir}/ "
                             f"(config hash {h}); start it without --resume")
        return marker.read_text().strip()
    key = f"{h}-{time.strftime('%Y%m%d-%H%M%S')}"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(key)
    return key


def job_specs(cfg: RunConfig, run_key: str, params: dict) -> list:
    from ccoma.job import JobSpec
    from ccoma.run_config import reference_stage
    from ccoma.scenarios import load_scenario

    reference = reference_stage(cfg, load_scenario(cfg.scenario))
    return [JobSpec(scenario=cfg.scenario, algo=j["algo"], seed=j["seed"], methods=j["methods"],
                    budget=cfg.budget, continual=cfg.continual, algo_overrides=dict(cfg.algo), sim=dict(cfg.sim),
                    device=check_device(cfg.device), tracking_uri=cfg.tracking_uri, run_key=run_key,
                    budget_name=cfg.budget_name, backend=describe(cfg.backend), params=params,
                    run_dir=cfg.run_dir, reference=reference, threads=cfg.threads,
                    fused_gru=cfg.fused_gru)
            for j in jobs(cfg)]


def evaluate(cfg: RunConfig, resume: bool = False, echo=click.echo) -> dict:
    """Run the grid and the report; returns {"run_id", "results", "failed", "report"}."""
    import yaml

    from ccoma import executors
    from ccoma.job import progress_file
    from ccoma.scenarios import load_scenario, scenario_path
    from ccoma.tracking import Tracker

    executors.check(cfg.executor, cfg.ray_address)
    check_backend(cfg.backend)  # before any MLflow run: a missing game is one line pointing at `ccoma doctor`
    backend = describe(cfg.backend)
    scenario = load_scenario(cfg.scenario)
    run_key = _run_key(cfg, resume)
    if resume:
        _check_checkpoints(job_specs(cfg, run_key, {}))
    tracker = Tracker(cfg.tracking_uri or None)  # probes a server first: unreachable = one clear line
    params = flatten_params(cfg)
    params.update({"protocol.unseen_from": _unseen(scenario, cfg), "budget.train_steps": cfg.budget.train_steps,
                   "budget.deploy_steps": cfg.budget.deploy_steps, "backend": backend})
    parent = tracker.evaluate_run(scenario.name, run_key, backend=backend, budget=cfg.budget_name, params=params,
                                  tags={"ccoma.config_hash": config_hash(cfg)})
    out_dir = Path(cfg.run_dir) / run_key
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(dataclasses.asdict(cfg), default=list)),
                                                        sort_keys=False))
    parent.log_artifact(out_dir / "config.yaml", "config")
    parent.log_artifact(scenario_path(cfg.scenario), "scenario")
    specs = [dataclasses.replace(s, parent_run_id=parent.run_id) for s in job_specs(cfg, run_key, params)]
    echo(f"ccoma: {cfg.scenario} [{backend}, budget {cfg.budget_name}: {cfg.budget.train_steps:,} train + "
         f"{cfg.budget.deploy_steps:,} deploy steps] - {len(specs)} jobs "
         f"({', '.join(cfg.methods)} x seeds {', '.join(map(str, cfg.seeds))}) on {cfg.executor}")
    if cfg.executor == "local" and cfg.threads > 1:
        import os

        cores = os.cpu_count() or 1
        running = min(len(specs), cfg.workers or cores)
        if running * cfg.threads > cores:
            echo(f"note: {running} jobs at a time x {cfg.threads} threads for updates > {cores} CPU cores: they "
                 f"compete for the cores (--workers {max(1, cores // cfg.threads)} fits)")
    results, failed = [], []
    started = time.time()
    stream = executors.run(specs, cfg.executor, cfg.workers, cfg.ray_address, poll=2.0)
    try:
        with _step_bar(specs) as bar:
            for spec, res in stream:
                if spec is None:  # nothing finished for a while: show how far the jobs are
                    bar.refresh()
                    continue
                bar.finish(progress_file(spec))
                if isinstance(res, BaseException):
                    failed.append((spec, res))
                    echo(f"\n  {spec.algo} seed {spec.seed}: FAILED ({type(res).__name__}: {str(res).splitlines()[0] if str(res) else ''})")
                else:
                    results.append(res)
                    echo(f"\n  {spec.algo} seed {spec.seed}: done in {res['seconds']:.0f} s - " + ", ".join(
                        f"{m} greedy test win {_mean(r['test']['win_rate']):.2f}"
                        for m, r in res["methods"].items() if r.get("test", {}).get("win_rate")))
    except KeyboardInterrupt:
        stream.close()  # the workers are stopped (or killed after their grace) before the sweep below
        _close_orphans(tracker, parent, "interrupted", "interrupted (Ctrl-C or SIGTERM); its worker was "
                                                       "stopped before it could mark the run")
        parent.finish("interrupted")
        raise
    if failed:  # a worker killed from outside (out of memory, SIGKILL) left its job's runs open
        _close_orphans(tracker, parent, "failed", "its job's worker ended without closing the run")
    parent.set_tags({"ccoma.failed_jobs": str(len(failed)), "ccoma.wall_seconds": f"{time.time() - started:.1f}"})
    parent.finish("finished" if not failed else "failed")
    report = None
    if cfg.report:
        report = write_report(cfg)
    return {"run_id": parent.run_id, "results": results, "failed": failed, "report": report, "run_key": run_key}


def _close_orphans(tracker, parent, status: str, reason: str) -> None:
    """Runs under ``parent`` that no worker closed (it was killed) get ``status``; best effort, as a
    store that is down must not hide why the command stopped."""
    try:
        tracker.close_orphans(parent, status, reason)
    except Exception:  # noqa: BLE001 - the command's own error or interrupt is what the user sees
        pass


def _step_bar(specs, label: str = "env steps"):
    """A progress bar over the env steps of all the jobs (ccoma.progress)."""
    from ccoma.job import progress_file, total_steps
    from ccoma.progress import StepBar

    return StepBar({progress_file(s): total_steps(s) for s in specs}, label)


def _check_checkpoints(specs) -> None:
    """Refuse to resume from a corrupt checkpoint before any job starts (nothing logged is touched)."""
    from ccoma import checkpoint
    from ccoma.job import job_dir

    for spec in specs:
        path = job_dir(spec) / "checkpoint.pt"
        if path.exists():
            checkpoint.load(path)


def _unseen(scenario, cfg: RunConfig):
    scaled = scenario.rescaled(cfg.budget.train_steps, cfg.budget.deploy_steps)
    return scaled.unseen_from if scaled.unseen_from is not None else "none"


def _mean(xs) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def write_report(cfg: RunConfig) -> list | None:
    """Build the comparison report from what MLflow holds (analysis.report)."""
    try:
        from analysis.report import build_report
    except ImportError as exc:
        raise CcomaError(f"report: the analysis package is unavailable ({exc})") from None
    from ccoma.scenarios import scenario_id

    name = scenario_id(cfg.scenario)
    return build_report([name], cfg.tracking_uri or None, Path("reports") / name, "both")


def single(cfg: RunConfig, algo: str, seed: int, kind: str, mode: str = "frozen", init_from: str = "",
           echo=click.echo) -> dict:
    """``ccoma train`` (kind "train": the training stage only) and ``ccoma deploy`` (kind "deploy":
    one deployment of a trained checkpoint or policy directory). Logged under a parent run of that kind."""
    from ccoma import executors
    from ccoma.job import run_job
    from ccoma.scenarios import scenario_id
    from ccoma.tracking import Tracker

    executors.check("local")
    check_backend(cfg.backend)  # before any MLflow run: a missing game is one line pointing at `ccoma doctor`
    backend = describe(cfg.backend)
    tracker = Tracker(cfg.tracking_uri or None)
    run_key = f"{kind}-{config_hash(cfg)}-{time.strftime('%Y%m%d-%H%M%S')}"
    params = dict(flatten_params(cfg), backend=backend)
    parent = tracker.evaluate_run(scenario_id(cfg.scenario), run_key, backend=backend, budget=cfg.budget_name,
                                  params=params, tags={"ccoma.kind": kind, "ccoma.init_from": init_from or "-"})
    spec = job_specs(dataclasses.replace(cfg, methods=(_method(algo, mode),), seeds=(seed,)), run_key, params)[0]
    spec = dataclasses.replace(spec, parent_run_id=parent.run_id, init_from=init_from,
                               stages=("train",) if kind == "train" else ())
    echo(f"ccoma {kind}: {algo} seed {seed} on {cfg.scenario} [{backend}]")
    try:
        with _step_bar([spec]):
            result = run_job(spec)
    except KeyboardInterrupt:
        parent.finish("interrupted")
        raise
    except Exception:
        parent.finish("failed")
        raise
    parent.finish("finished")
    result["run_id"] = parent.run_id
    return result


def _method(algo: str, mode: str) -> str:
    from ccoma.algos.registry import method_name

    return method_name(algo, mode)


def load_policy(path: str, env):
    """A stateful greedy policy ``(obs [B,N,O], avail [B,N,A]) -> actions [B,N]`` for ``env`` from a ccoma
    checkpoint (its current learner) or a policy directory (a registered model's artifacts)."""
    import torch

    from ccoma import checkpoint

    p = Path(path)
    if p.is_dir():
        from ccoma.serving import load_policy as load_dir

        greedy = load_dir(p)
        step = greedy.step
        hidden = greedy.init_hidden(env.n_envs)
    else:
        from ccoma.algos import registry

        state = checkpoint.load(p)
        learner = registry.make(state["algo"], env.get_env_info(), "cpu")
        learner.load_state_dict(state["learner"])
        hidden = learner.init_hidden(env.n_envs)

        def step(obs, avail, last, h):
            return learner.act(obs, avail, last, h, 0, "greedy")

    last = torch.full((env.n_envs, env.n_agents), -1, dtype=torch.long)
    memory = {"hidden": hidden, "last": last}

    @torch.no_grad()
    def policy(obs, avail):
        actions, memory["hidden"] = step(obs.cpu(), avail.cpu(), memory["last"], memory["hidden"])
        memory["last"] = actions
        return actions

    return policy
