"""The configuration of an ``evaluate`` run: methods, seeds, budgets, continual strategy, executor.

Names line up across the project: ``--method c-coma`` is the ``coma`` learner deployed in the
``continual`` mode; ``--scenario shifting_spawn`` is ``scenarios/shifting_spawn.yaml``.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from ccoma.config import build, doc
from ccoma.errors import ConfigError

# method -> (learner registry key, deployment mode)
METHODS: dict[str, tuple[str, str]] = {
    "coma": ("coma", "frozen"), "c-coma": ("coma", "continual"),
    "qmix": ("qmix", "frozen"), "c-qmix": ("qmix", "continual"),
    "vdn": ("vdn", "frozen"), "c-vdn": ("vdn", "continual"),
    "iql": ("iql", "frozen"), "c-iql": ("iql", "continual"),
    "mfq": ("mfq", "frozen"), "c-mfq": ("mfq", "continual"),
}
PAPER_METHODS = ("c-coma", "coma", "qmix", "vdn", "c-qmix", "c-vdn")


@dataclasses.dataclass(frozen=True)
class Budget:
    """How many steps, and how often to log, evaluate and checkpoint. Steps are env steps summed
    over the parallel environments (pymarl's ``t_env``)."""

    train_steps: int = doc("Training steps per (method, seed); 0 = the scenario's protocol.", 0)
    deploy_steps: int = doc("Deployment steps per (method, seed); 0 = the scenario's protocol.", 0)
    n_envs: int = doc("Parallel simulator environments per job (the paper: 8).", 8)
    log_points: int = doc("Metric points per stage (online win rate, return, losses).", 100)
    eval_points: int = doc("Greedy evaluations of every deployment phase during deployment.", 10)
    eval_episodes: int = doc("Episodes per greedy evaluation of one phase.", 32)
    checkpoints: int = doc("Checkpoints per stage (a resumed run restarts at the last one).", 10)
    buffer_size: int = doc("Replay capacity in episodes (the paper: 5000).", 5000)
    compile: bool = doc("Compile the simulator step with torch.compile: ~2.4x faster stepping at 32 envs, for "
                        "~20 s of compilation per environment (a few seconds once inductor's cache holds it).",
                        False)
    render_steps: int = doc("Continual deployments draw one battle on the last deployment phase before and "
                            "after adaptation (GIF + frames, artifact 'renders/'), at most this many steps; "
                            "0 = no pictures.", 120)


BUDGETS: dict[str, Budget] = {
    # seconds per job: for tests and CI
    "smoke": Budget(train_steps=3_000, deploy_steps=3_000, n_envs=8, log_points=10, eval_points=3,
                    eval_episodes=8, checkpoints=3, buffer_size=200, render_steps=12),
    # minutes on a laptop: shows the shift
    "quick": Budget(train_steps=200_000, deploy_steps=200_000, n_envs=32, log_points=50, eval_points=8,
                    eval_episodes=32, checkpoints=5, buffer_size=1000, compile=True),  # pays off: docs/throughput.md
    # the scenario's own protocol (the paper's: 5M train, 1M deploy). The paper ran 8 environments in
    # parallel; 32 here is for throughput. Learners update per finished episodes, so the ratio of
    # updates to data is the same.
    "paper": Budget(train_steps=0, deploy_steps=0, n_envs=32, log_points=200, eval_points=20,
                    eval_episodes=32, checkpoints=20, buffer_size=5000, compile=True),
}
# seeds when none are given: intervals need at least two
BUDGET_SEEDS = {"smoke": (0,), "quick": (0, 1), "paper": (0, 1, 2)}


@dataclasses.dataclass(frozen=True)
class ContinualConfig:
    """What learns at deployment in the continual mode, and how it is held near what it knew."""

    trainable: dict = doc(
        "Per network, parameter-name patterns (fnmatch) that keep learning at deployment; networks "
        "not listed stay frozen. Default: the agents' output layer, the coordinator's (critic's) "
        "last layer and the QMIX mixer's final hypernetwork and state value (see docs/continual.md).",
        factory=lambda: {"agent": ("fc2.*",), "critic": ("fc3.*",), "mixer": ("hyper_w2.*", "value.*")})
    anchor: str = doc("Pull toward the pre-deployment weights: 'none', 'l2' or 'ewc' (Fisher-weighted).", "none")
    anchor_weight: float = doc("Strength of the anchor penalty.", 1.0)
    fisher_batches: int = doc("Replay batches used to estimate the EWC Fisher diagonal.", 4)
    explore: bool = doc("Continual methods act with their exploration policy at its final level "
                        "(they must keep exploring to learn); frozen methods act greedily.", True)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One ``ccoma evaluate``: every method x seed on one scenario."""

    scenario: str = doc("Scenario name (scenarios/<name>.yaml) or path.", "shifting_spawn")
    methods: tuple[str, ...] = doc("Methods: coma, c-coma, qmix, c-qmix, vdn, c-vdn, iql, c-iql, mfq, c-mfq.",
                                   PAPER_METHODS)
    seeds: tuple[int, ...] = doc("Seeds; each (method, seed) is one child run. Empty: the budget's "
                                 "(smoke 0; quick 0 1; paper 0 1 2).", ())
    budget_name: str = doc("smoke, quick or paper (paper = the scenario's own protocol).", "paper")
    budget: Budget = doc("The resolved budget.", factory=Budget)
    algo: dict = doc("Per learner overrides of its config, e.g. {qmix: {lr: 0.001}}.", factory=dict)
    continual: ContinualConfig = doc("The continual strategy.", factory=ContinualConfig)
    sim: dict = doc("Overrides of the simulator's SimConfig (ccoma.sim.engine).", factory=dict)
    device: str = doc("torch device for simulation and learning: cpu, cuda or auto.", "cpu")
    executor: str = doc("local (process pool) or ray.", "local")
    workers: int = doc("Parallel jobs for the local executor (0 = number of CPU cores).", 0)
    ray_address: str = doc("Ray cluster address for executor=ray ('' = start a local runtime).", "")
    tracking_uri: str = doc("MLflow tracking URI ('' = sqlite:///mlflow.db in the working directory).", "")
    run_dir: str = doc("Where checkpoints and run files go.", "ccoma_runs")
    report: bool = doc("Write the comparison report at the end.", True)


def resolve(scenario_name: str, budget_name: str = "paper", methods=None, seeds=None,
            train_steps: int | None = None, deploy_steps: int | None = None,
            overrides: dict | None = None, where: str = "config", **fields: Any) -> RunConfig:
    """Build a RunConfig from CLI options (and an optional YAML mapping), validating everything."""
    from ccoma.scenarios import load_scenario

    data = dict(overrides or {})
    cfg = build(RunConfig, {k: v for k, v in data.items() if k != "budget"}, where)
    if budget_name not in BUDGETS:
        raise ConfigError("--budget", f"unknown budget '{budget_name}' (known: {', '.join(BUDGETS)})")
    base = dataclasses.asdict(BUDGETS[budget_name])
    budget = build(Budget, {**base, **(data.get("budget") or {})}, where, prefix="budget.")
    scenario = load_scenario(scenario_name)
    train = train_steps if train_steps is not None else (budget.train_steps or scenario.train_steps)
    deploy = deploy_steps if deploy_steps is not None else (budget.deploy_steps or scenario.deploy_steps)
    for name, value in (("--train-steps", train), ("--deploy-steps", deploy)):
        if value is None or value <= 0:
            raise ConfigError(name, f"step count must be a positive number, got {value}")
    budget = dataclasses.replace(budget, train_steps=int(train), deploy_steps=int(deploy))
    if budget.n_envs < 1 or budget.log_points < 1 or budget.eval_points < 1 or budget.checkpoints < 1:
        raise ConfigError(where, "budget: n_envs, log_points, eval_points and checkpoints must be positive")
    if min(train, deploy) < budget.n_envs * budget.log_points:
        raise ConfigError("--train-steps/--deploy-steps",
                          f"{min(train, deploy)} steps cannot hold {budget.log_points} log points of "
                          f"{budget.n_envs} parallel environments (need at least {budget.n_envs * budget.log_points})")
    methods = tuple(methods or cfg.methods)
    for m in methods:
        if m not in METHODS:
            raise ConfigError("--method", f"unknown method '{m}' (known: {', '.join(METHODS)})")
    seeds = tuple(int(s) for s in (seeds or cfg.seeds or BUDGET_SEEDS[budget_name]))
    if not seeds:
        raise ConfigError("--seed", "at least one seed is needed")
    fields = {k: v for k, v in fields.items() if v is not None}
    return dataclasses.replace(cfg, scenario=scenario_name, methods=methods, seeds=seeds,
                               budget_name=budget_name, budget=budget, **fields)


def jobs(cfg: RunConfig) -> list[dict]:
    """One job per (learner, seed): it trains once and deploys in every mode the methods ask for."""
    out: dict[tuple[str, int], dict] = {}
    for seed in cfg.seeds:
        for m in cfg.methods:
            algo, mode = METHODS[m]
            job = out.setdefault((algo, seed), {"algo": algo, "seed": seed, "methods": {}})
            job["methods"][mode] = m
    return list(out.values())
