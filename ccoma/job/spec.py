"""What a job is: its plain-data spec, its typed stages, and where it keeps its files.

A job is one (learner, seed) of the grid. It trains once, then deploys the trained weights in each
requested mode. Deployment modes:

- ``frozen``: no learning, greedy actions (how CTDE methods are deployed);
- ``continual``: only the trainable set keeps learning, with the behaviour (exploration) policy;
- ``frozen-explore``: no learning, behaviour policy - the control that separates the cost of
  sampling actions from the effect of adaptation;
- ``reference`` (``evaluate --reference``): not a deployment of the trained weights but a fresh learner
  trained from scratch only on the first unseen phase, for as many steps as that phase lasts in the
  deployment - the baseline of forward transfer (Continual World). Its steps count from 0.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ccoma.run_config import Budget, ContinualConfig

DEPLOY_MODES = ("frozen", "continual", "frozen-explore", "reference")


@dataclasses.dataclass
class JobSpec:
    """Everything a worker process needs; plain data so it pickles to a pool or to Ray."""

    scenario: str
    algo: str
    seed: int
    methods: dict            # mode -> method name
    budget: Budget
    continual: ContinualConfig
    algo_overrides: dict
    sim: dict
    device: str
    tracking_uri: str
    run_key: str
    budget_name: str
    backend: str
    params: dict
    run_dir: str
    parent_run_id: str = ""     # the evaluate/train/deploy parent run this job logs under
    stages: tuple = ()          # () = train, then a deployment per requested mode; ("train",) = train only
    init_from: str = ""         # deploy from this trained checkpoint (or policy directory) instead of training
    reference: tuple = ()       # (phase, steps) of the from-scratch reference stage, when methods has "reference"
    threads: int = 1            # torch threads for learner updates (RunConfig.threads)
    fused_gru: bool = True      # the learners' GRU unroll: ccoma's fused C loop (RunConfig.fused_gru)


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of a job: training, or one deployment mode."""

    kind: str        # "train" | "deploy"
    mode: str        # "train" for the training stage; a DEPLOY_MODES entry for a deployment
    steps: int

    @property
    def name(self) -> str:
        """The stage's name in checkpoints: "train" or "deploy/<mode>"."""
        return "train" if self.kind == "train" else f"deploy/{self.mode}"

    @property
    def prefix(self) -> str:
        """Metric prefix of its online series: "train" or "deploy"."""
        return self.kind

    @property
    def is_train(self) -> bool:
        return self.kind == "train"

    @property
    def learns(self) -> bool:
        return self.kind == "train" or self.mode in ("continual", "reference")

    @property
    def is_reference(self) -> bool:
        return self.mode == "reference"


def job_dir(spec: JobSpec) -> Path:
    """Where a job keeps its checkpoint, progress, pictures and policies."""
    return Path(spec.run_dir) / spec.run_key / f"{spec.algo}-seed{spec.seed}"


def progress_file(spec: JobSpec) -> Path:
    """Where a job reports its env steps done (ccoma.progress)."""
    return job_dir(spec) / "progress.json"


def stages(spec: JobSpec) -> list[Stage]:
    """The stages a job runs, in order."""
    b = spec.budget
    plan = [Stage("train", "train", b.train_steps)] + [
        Stage("deploy", mode, spec.reference[1] if mode == "reference" else b.deploy_steps)
        for mode in DEPLOY_MODES if mode in spec.methods]
    if spec.stages:
        plan = [s for s in plan if s.name in spec.stages]
    if spec.init_from:
        plan = [s for s in plan if not s.is_train]
    return plan


def total_steps(spec: JobSpec) -> int:
    """The env steps of all the job's stages (progress bars, the order jobs start in)."""
    return sum(s.steps for s in stages(spec))
