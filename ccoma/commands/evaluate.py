"""``ccoma evaluate``: train every method, deploy it into the changing world, log, register, report."""
from __future__ import annotations

import click


BACKEND_OPTION = click.option(
    "--backend", type=click.Choice(["sim", "sc2"]), default=None,
    help="Environment backend: sim (built-in simulator, default) or sc2 (StarCraft II; see `ccoma doctor`).")

STEPS = click.IntRange(1, 10 ** 12)   # env steps of one stage
SEED = click.IntRange(0, 2 ** 31 - 1)  # env seeds are derived as seed * 1000 + k: stay well inside int64


def check_folder(path: str, option: str) -> None:
    """A folder ccoma will write into: created if absent; a file there or no write permission is one line."""
    import os
    from pathlib import Path

    from ccoma.errors import CcomaError

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CcomaError(f"{option} {path}: is a file, not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CcomaError(f"{option} {path}: cannot create the folder ({exc.strerror})") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise CcomaError(f"{option} {path}: no permission to write there")


def common_options(fn):
    """Options shared by evaluate, train and deploy."""
    opts = [
        click.option("--scenario", "-s", default="shifting_spawn", show_default=True,
                     help="Scenario name (scenarios/<name>.yaml) or a path to a scenario file."),
        click.option("--budget", "-b", "budget", default="paper", show_default=True,
                     help="smoke (seconds), quick (minutes), paper (the scenario's protocol: 5M + 1M)."),
        click.option("--train-steps", type=STEPS, default=None, help="Override the budget's training steps."),
        click.option("--deploy-steps", type=STEPS, default=None, help="Override the budget's deployment steps."),
        click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                     help="YAML file of RunConfig overrides (see docs/config.md)."),
        click.option("--tracking-uri", default=None, help="MLflow tracking URI (default sqlite:///mlflow.db)."),
        click.option("--device", default=None, help="cpu, cuda or auto."),
        click.option("--threads", type=click.IntRange(1, 1024), default=None,
                     help="torch threads per job for learner updates (default 1: results bit-identical on any "
                          "worker count; 2 makes QMIX/VDN updates ~1.45x faster but regroups sums)."),
        click.option("--fused-gru/--no-fused-gru", "fused_gru", default=None,
                     help="Learner updates unroll the agents' GRU in ccoma's fused C loop, skipping each "
                          "episode's padding there and in QMIX's mixer, and COMA's critic walks in C (default "
                          "on: COMA/QMIX jobs ~2.6-3.0x/~2.2-2.3x faster than 6baf4c6; rounds differently, ~1e-7). "
                          "--no-fused-gru: torch.gru and the critic's step-by-step walk."),
        BACKEND_OPTION,
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def load_overrides(config_file):
    if not config_file:
        return {}
    from ccoma.config import load_yaml
    from ccoma.errors import ConfigError

    data = load_yaml(config_file) or {}
    if not isinstance(data, dict):
        raise ConfigError(config_file, "a config file should be a mapping of RunConfig fields")
    return data


@click.command()
@common_options
@click.option("--method", "-m", "methods", multiple=True,
              help="Method(s): <algo> (frozen), c-<algo> (continual), <algo>-explore (frozen, behaviour policy) for algo in coma qmix vdn iql mfq; default the paper's six (c-coma coma qmix vdn c-qmix c-vdn) and coma-explore.")
@click.option("--seed", "seeds", type=SEED, multiple=True, help="Seed(s); default by budget: smoke 0, quick 0 1, paper 0 1 2.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default=None, help="Job executor (default local).")
@click.option("--workers", type=click.IntRange(0, 1024), default=None, help="Local pool size (default: CPU cores; 1 = run the jobs in this process).")
@click.option("--ray-address", default=None, help="Ray cluster address (default: start a local runtime).")
@click.option("--run-dir", default=None, help="Checkpoints and run files (default ./ccoma_runs).")
@click.option("--resume", is_flag=True, help="Continue the last interrupted run of this configuration.")
@click.option("--report/--no-report", default=None, help="Write the comparison report at the end (default on).")
@click.option("--reference", is_flag=True, default=None,
              help="Also train from-scratch references on the unseen phase (<algo>-reference runs), so the "
                   "report can give forward transfer.")
def evaluate(scenario, budget, train_steps, deploy_steps, config_file, tracking_uri, device, threads, fused_gru,
             backend, methods, seeds, executor, workers, ray_address, run_dir, resume, report, reference):
    """Train each method, deploy it frozen or still learning into the changing world, and report.

    Example: ccoma evaluate --scenario shifting_spawn --budget quick
    """
    from ccoma.experiment import evaluate as run_evaluate
    from ccoma.run_config import resolve

    cfg = resolve(scenario, budget, methods=methods, seeds=seeds, train_steps=train_steps,
                  deploy_steps=deploy_steps, overrides=load_overrides(config_file),
                  where=config_file or "config", tracking_uri=tracking_uri, device=device, threads=threads,
                  fused_gru=fused_gru, backend=backend, executor=executor, workers=workers, ray_address=ray_address,
                  run_dir=run_dir, report=report, reference=reference)
    if cfg.ray_address and cfg.executor != "ray":
        from ccoma.errors import CcomaError

        raise CcomaError(f"--ray-address {cfg.ray_address}: only used with --executor ray (executor is {cfg.executor})")
    check_folder(cfg.run_dir, "--run-dir")
    out = run_evaluate(cfg, resume=resume)
    click.echo(f"parent run {out['run_id']} (run key {out['run_key']}); "
               f"{len(out['results'])} jobs finished, {len(out['failed'])} failed")
    if out["report"]:
        click.echo("report: " + ", ".join(str(p) for p in out["report"]))
    if out["failed"]:
        raise SystemExit(1)
