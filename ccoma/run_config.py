"""The configuration of an ``evaluate`` run: methods, seeds, budgets, continual strategy, executor.

Names line up across the project: ``--method c-coma`` is the ``coma`` learner deployed in the
``continual`` mode; ``--scenario shifting_spawn`` is ``scenarios/shifting_spawn.yaml``.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from ccoma.algos.registry import DEFAULT_METHODS, method, methods  # the one method list
from ccoma.config import build, doc
from ccoma.errors import ConfigError

METHODS = methods()  # method -> (learner registry key, deployment mode)


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
    test_points: int = doc("Greedy test points over a deployment (the headline curve, pymarl's test win "
                           "rate; at chunk boundaries, so at least this many, plus step 0).", 40)
    train_test_points: int = doc("Greedy test points over training (pymarl's test win rate during training, "
                                 "the learning curve: ``train/test/win_rate|return``; at chunk boundaries, the "
                                 "last at the end of training); 0 = none. They leave training unchanged.", 0)
    test_episodes: int = doc("Episodes per greedy test point, drawn from the deployment's current "
                             "distribution; the same episodes for every method of a seed.", 32)
    checkpoints: int = doc("Checkpoints per stage (a resumed run restarts at the last one).", 10)
    buffer_size: int = doc("Replay capacity in episodes for replay learners (the paper: 5000). On-policy "
                           "learners (COMA) ignore it: they train on the episodes since their last update.", 5000)
    compile: bool = doc("Compile the simulator step with torch.compile: ~2.4x faster stepping at 32 envs, for "
                        "~20 s of compilation per environment (a few seconds once inductor's cache holds it).",
                        False)
    render_steps: int = doc("Continual deployments draw one battle on the last deployment phase before and "
                            "after adaptation (GIF + frames, artifact 'renders/'), at most this many steps; "
                            "0 = no pictures.", 120)


BUDGETS: dict[str, Budget] = {
    # seconds per job: for tests and CI
    "smoke": Budget(train_steps=3_000, deploy_steps=3_000, n_envs=8, log_points=10, eval_points=2,
                    eval_episodes=8, test_points=3, test_episodes=8, checkpoints=3, buffer_size=200,
                    render_steps=12),
    # minutes on a laptop: shows the shift
    "quick": Budget(train_steps=200_000, deploy_steps=200_000, n_envs=32, log_points=50, eval_points=8,
                    eval_episodes=32, test_points=40, train_test_points=10, test_episodes=32, checkpoints=5,
                    buffer_size=1000, compile=True),  # pays off: docs/throughput.md
    # the scenario's own protocol (the paper's: 5M train, 1M deploy). The paper ran 8 environments in
    # parallel; 32 here is for throughput. Learners update per finished episodes, so the ratio of
    # updates to data is the same.
    "paper": Budget(train_steps=0, deploy_steps=0, n_envs=32, log_points=200, eval_points=20,
                    eval_episodes=32, test_points=50, train_test_points=20, test_episodes=32, checkpoints=20,
                    buffer_size=5000, compile=True),
}
# seeds when none are given: intervals need at least two
BUDGET_SEEDS = {"smoke": (0,), "quick": (0, 1), "paper": (0, 1, 2)}


@dataclasses.dataclass(frozen=True)
class ContinualConfig:
    """What learns at deployment in the continual mode, and how it is held near what it knew."""

    trainable: dict = doc(
        "Per network, parameter-name patterns (fnmatch) that keep learning at deployment; networks "
        "not listed stay frozen. Default: the last layer of every network - the agents' output layer, "
        "the coordinator's (COMA critic's) last layer, the QMIX mixer's last hypernetwork and state-value "
        "layers - so the coordinators' budgets are comparable (see docs/continual.md).",
        factory=lambda: {"agent": ("fc2.*",), "critic": ("fc3.*",), "mixer": ("hyper_w2.2.*", "value.2.*")})
    anchor: str = doc("Pull toward the pre-deployment weights: 'none', 'l2' or 'ewc' (Fisher-weighted).", "none")
    anchor_weight: float = doc("Strength of the anchor penalty.", 1.0)
    fisher_batches: int = doc("Replay batches used to estimate the EWC Fisher diagonal.", 4)
    explore: bool = doc("Continual methods act with their exploration policy at its final level "
                        "(they must keep exploring to learn); frozen methods act greedily.", True)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One ``ccoma evaluate``: every method x seed on one scenario."""

    scenario: str = doc("Scenario name (scenarios/<name>.yaml) or path.", "shifting_spawn")
    methods: tuple[str, ...] = doc("Methods (ccoma.algos.registry): <algo> frozen, c-<algo> continual, "
                                   "<algo>-explore frozen with the behaviour policy; algo one of coma, "
                                   "qmix, vdn, iql, mfq.", DEFAULT_METHODS)
    seeds: tuple[int, ...] = doc("Seeds; each (method, seed) is one child run. Empty: the budget's "
                                 "(smoke 0; quick 0 1; paper 0 1 2).", ())
    budget_name: str = doc("smoke, quick or paper (paper = the scenario's own protocol).", "paper")
    budget: Budget = doc("The resolved budget.", factory=Budget)
    algo: dict = doc("Per learner overrides of its config, e.g. {qmix: {lr: 0.001}}.", factory=dict)
    continual: ContinualConfig = doc("The continual strategy.", factory=ContinualConfig)
    backend: str = doc("Environment backend: 'sim' (the built-in simulator) or 'sc2' (StarCraft II, needs the "
                       "game; see docs/sc2.md and `ccoma doctor`).", "sim")
    sim: dict = doc("Overrides of the backend's config: the simulator's SimConfig (ccoma.sim.engine), or with "
                    "backend sc2 its Sc2Config (ccoma.envs.sc2.config).", factory=dict)
    device: str = doc("torch device for simulation and learning: cpu, cuda or auto.", "cpu")
    executor: str = doc("local (process pool) or ray.", "local")
    workers: int = doc("Parallel jobs for the local executor (0 = number of CPU cores).", 0)
    threads: int = doc("torch threads per job for learner updates (acting and the simulator always use one). "
                       "1: a seed's results are bit-identical on any executor and worker count. More speeds "
                       "up the QMIX/VDN updates (about 1.45x with 2 threads on a 2-core machine; COMA ~1.1x, "
                       "docs/throughput.md) but regroups the sums inside matrix products, so a seed's results "
                       "at another thread count differ slightly (as noise, not bias). Keep workers x threads "
                       "within the CPU cores.", 1)
    fused_gru: bool = doc("Learner updates unroll the agents' GRU with ccoma's fused C loop "
                          "(ccoma.algos.fused_gru: per time step one pass over the gates, the products in "
                          "torch's BLAS) instead of torch.gru, and run the agents' fc1 and GRU (and QMIX's "
                          "mixer) only on the slots each episode of a batch fills (its padding is skipped); "
                          "COMA's critic walks its time steps in C (ccoma.algos.fused_critic). Per paper-budget "
                          "job, two side by side, against 6baf4c6: COMA 2.6-3.0x, QMIX 2.2-2.3x (torch.gru: COMA ~1.7x; "
                          "docs/throughput.md). The same layers and losses, but exp/tanh and the gradient sums "
                          "round differently (~1e-7), so a seed's results differ from torch.gru's as noise, not "
                          "bias. On by default since session 35; off (--no-fused-gru) runs torch.gru, bit for "
                          "bit the GRUCell walk that acting runs, and the critic's step-by-step walk. Needs a C "
                          "compiler (built once into ccoma's cache); without one, or off the CPU, it runs "
                          "torch.gru and the step-by-step walk, and says so (tag ccoma.gru_unroll).", True)
    ray_address: str = doc("Ray cluster address for executor=ray ('' = start a local runtime).", "")
    tracking_uri: str = doc("MLflow tracking URI ('' = sqlite:///mlflow.db in the working directory).", "")
    run_dir: str = doc("Where checkpoints and run files go.", "ccoma_runs")
    report: bool = doc("Write the comparison report at the end.", True)
    reference: bool = doc("Also train, per learner and seed, a from-scratch reference on the first unseen "
                          "deployment phase for as many steps as it lasts (method <algo>-reference): the "
                          "baseline of forward transfer.", False)


def resolve(scenario_name: str, budget_name: str = "paper", methods=None, seeds=None,
            train_steps: int | None = None, deploy_steps: int | None = None,
            overrides: dict | None = None, where: str = "config", **fields: Any) -> RunConfig:
    """Build a RunConfig from CLI options (and an optional YAML mapping), validating everything."""
    from ccoma.scenarios import load_scenario

    data = dict(overrides or {})
    cfg = build(RunConfig, {k: v for k, v in data.items() if k != "budget"}, where)
    from ccoma.envs import BACKENDS

    backend = fields.get("backend") or cfg.backend
    if backend not in BACKENDS:
        raise ConfigError("--backend", f"unknown backend '{backend}' (known: {', '.join(BACKENDS)})")
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
    if budget.train_test_points < 0:
        raise ConfigError(where, "budget: train_test_points must be 0 (none) or positive")
    if budget.n_envs < 1 or budget.log_points < 1 or budget.eval_points < 1 or budget.checkpoints < 1:
        raise ConfigError(where, "budget: n_envs, log_points, eval_points and checkpoints must be positive")
    if min(train, deploy) < budget.n_envs * budget.log_points:
        raise ConfigError("--train-steps/--deploy-steps",
                          f"{min(train, deploy)} steps cannot hold {budget.log_points} log points of "
                          f"{budget.n_envs} parallel environments (need at least {budget.n_envs * budget.log_points})")
    methods = tuple(methods or cfg.methods)
    for m in methods:
        method(m)
    seeds = tuple(int(s) for s in (seeds or cfg.seeds or BUDGET_SEEDS[budget_name]))
    if not seeds:
        raise ConfigError("--seed", "at least one seed is needed")
    fields = {k: v for k, v in fields.items() if v is not None}
    threads = fields.get("threads", cfg.threads)
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ConfigError("--threads", f"threads per job must be a whole number of at least 1, got {threads!r}")
    cfg = dataclasses.replace(cfg, scenario=scenario_name, methods=methods, seeds=seeds,
                              budget_name=budget_name, budget=budget, **fields)
    check(cfg, scenario, where)
    reference_stage(cfg, scenario)
    return cfg


def check(cfg: RunConfig, scenario, where: str = "config") -> None:
    """Validate what only shows when things are built - before any MLflow run exists: the device,
    the simulator overrides, every learner override (learner names and fields), and the trainable
    set against the parameters of the learners the methods use."""
    import copy

    from ccoma.algos import registry
    from ccoma.continual.trainable import apply_trainable
    from ccoma.sim.engine import SimConfig
    from ccoma.sim.env import SimEnv

    check_device(cfg.device)
    # with backend sc2 the `sim:` section holds the game's settings (checked by ccoma.envs.sc2); the
    # layout (and so every learner's shapes) is the simulator's on either backend
    sim = build(SimConfig, cfg.sim, where, prefix="sim.") if cfg.backend == "sim" else SimConfig()
    for name, ov in cfg.algo.items():
        registry.get(str(name), where=f"{where}: algo")
        if ov is not None and not isinstance(ov, dict):
            raise ConfigError(where, f"'algo.{name}' should be a mapping of {name}'s config fields")
    configs = {name: registry.make_config(name, ov, where=where, prefix=f"algo.{name}.")
               for name, ov in cfg.algo.items()}
    env = SimEnv(scenario.map, 1, source=scenario.source("train"), config=sim, device="cpu", seed=0, compile=False)
    info = env.get_env_info()
    for algo in sorted({method(m)[0] for m in cfg.methods}):
        learner = registry.make(algo, info, "cpu", config=configs.get(algo))
        if any(method(m) == (algo, "continual") for m in cfg.methods):
            apply_trainable(copy.deepcopy(learner.networks()), cfg.continual.trainable)


def check_device(name: str) -> str:
    """The torch device a run uses; 'auto' picks CUDA when present. CUDA without CUDA is an error."""
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--device", f"'{name}': CUDA is not available on this machine")
    elif name != "cpu":
        raise ConfigError("--device", f"unknown device '{name}' (cpu, cuda, auto)")
    return name


def jobs(cfg: RunConfig) -> list[dict]:
    """One job per (learner, seed): it trains once and deploys in every mode the methods ask for."""
    out: dict[tuple[str, int], dict] = {}
    for seed in cfg.seeds:
        for m in cfg.methods:
            algo, mode = method(m)
            job = out.setdefault((algo, seed), {"algo": algo, "seed": seed, "methods": {}})
            job["methods"][mode] = m
    if cfg.reference:
        from ccoma.algos.registry import REFERENCE_NAME

        for job in out.values():
            job["methods"]["reference"] = REFERENCE_NAME.format(algo=job["algo"])
    return list(out.values())


def reference_stage(cfg: RunConfig, scenario) -> tuple:
    """(phase, steps) of the from-scratch reference: the first deployment phase never seen in training,
    for the deployment steps from ``unseen_from`` to the end; () without --reference."""
    if not cfg.reference:
        return ()
    scaled = scenario.rescaled(cfg.budget.train_steps, cfg.budget.deploy_steps)
    unseen = [p for p in scaled.deploy_phases if p not in scaled.train_phases]
    if not unseen or scaled.unseen_from is None:
        raise ConfigError("--reference", f"scenario '{cfg.scenario}' has no deployment phase unseen in training")
    return unseen[0], int(cfg.budget.deploy_steps - scaled.unseen_from)
