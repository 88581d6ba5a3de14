"""The continual strategy: what learns in each stage, how the agents act, and the anchor.

Training: everything learns, with the behaviour policy on the learner's own exploration schedule.
Deployment: the trained weights, then per mode (see :mod:`ccoma.job.spec`) which parameters learn
(none, or the trainable set) and which policy acts (greedy or behaviour). A behaviour policy at
deployment explores at the level the learner had reached when its training ended, whatever the
deployment's budget (the level is stored with the trained weights).
"""
from __future__ import annotations

import dataclasses

from ccoma.continual import anchors
from ccoma.continual.trainable import apply_trainable, set_all
from ccoma.job.spec import Stage
from ccoma.run_config import ContinualConfig


@dataclasses.dataclass(frozen=True)
class Acting:
    """How a stage acts and learns."""

    mode: str                 # "explore" (behaviour policy) or "greedy"
    learn: bool
    schedule_t: int | None    # the exploration schedule's step: None = follow the stage's steps (training);
                              # a deployment holds the level the learner reached when training ended


def acting(stage: Stage, continual: ContinualConfig, trained_t: int) -> Acting:
    """How ``stage`` acts; ``trained_t`` is the schedule step at which the learner's training ended."""
    if stage.is_train or stage.is_reference:  # a reference learns from scratch on its own schedule
        return Acting("explore", True, None)
    explore = stage.mode == "frozen-explore" or (stage.mode == "continual" and continual.explore)
    return Acting("explore" if explore else "greedy", stage.learns, trained_t)


def prepare(learner, stage: Stage, continual: ContinualConfig, trained: dict | None,
            initial: dict | None = None) -> None:
    """Load the trained weights for a deployment (the initial ones for a from-scratch reference) and
    set which parameters learn."""
    if stage.is_train:
        set_all(learner.networks(), True)
        return
    if stage.is_reference:
        learner.load_state_dict(initial)
        learner.clear_regularizers()
        set_all(learner.networks(), True)
        return
    learner.load_state_dict(trained)
    learner.clear_regularizers()
    if stage.mode == "continual":
        apply_trainable(learner.networks(), continual.trainable)
    else:
        set_all(learner.networks(), False)


def parameter_counts(learner, mode: str, continual: ContinualConfig) -> dict[str, int]:
    """MLflow params: trainable and total parameter counts of a deployment mode, per network too."""
    from ccoma.continual.trainable import counts

    patterns = continual.trainable if mode == "continual" else (True if mode in ("train", "reference") else None)
    per = counts(learner.networks(), patterns)
    out = {"params.trainable": sum(a for a, _ in per.values()), "params.total": sum(b for _, b in per.values())}
    out.update({f"params.trainable.{n}": a for n, (a, _) in per.items()})
    out.update({f"params.total.{n}": b for n, (_, b) in per.items()})
    return out


def exploration_text(learner, mode: str, trained_t: int) -> str:
    """The exploration a mode's behaviour policy used, in words (logged as a param)."""
    schedule = learner.exploration_schedule()
    if mode in ("frozen",):
        return f"greedy (trained with {schedule})"
    if mode == "reference":
        return f"{schedule}, from scratch"
    return f"{schedule}; deployed at {learner.exploration(trained_t):.4g} (the level when training ended)"


def anchor(learner, continual: ContinualConfig, schedule_t: int = 0, fisher_episodes=None) -> None:
    """Attach the anchor toward the current (trained) weights. ``fisher_episodes()`` returns a
    callable that samples a batch of training-distribution episodes played by the deployed behaviour
    policy (EWC only); ``schedule_t`` is that policy's exploration step."""
    if continual.anchor == "none":
        return
    fisher = None
    if continual.anchor == "ewc":
        sample = fisher_episodes()
        fisher = anchors.fisher_diagonal(learner, sample, continual.fisher_batches, t_env=schedule_t)
    anchors.attach(learner, continual.anchor, continual.anchor_weight, fisher)


def method_params(learner, mode: str, spec, trained_t: int) -> dict:
    """The MLflow params of one method's run: parameter budget, exploration, reference stage."""
    params = parameter_counts(learner, mode, spec.continual)
    params["exploration"] = exploration_text(learner, mode, trained_t)
    if mode == "reference":
        params["reference.phase"], params["reference.steps"] = spec.reference
    return params


def fisher_sampler(spec, scenario, learner, env_info: dict, schedule_t: int, envs):
    """A sampler of training-distribution episodes for the EWC Fisher, played by the deployed
    behaviour policy (exploration held at ``schedule_t``), from the job's ``fisher`` seed stream,
    in an environment of ``envs``, the job's pool of short-lived environments."""
    from ccoma.data.buffer import EpisodeBuffer
    from ccoma.data.rollout import Rollout
    from ccoma.seeds import seed_for

    seed = seed_for(spec.seed, "fisher")
    env = envs.get(scenario.source("train", seed=seed), spec.budget.n_envs, seed)
    need = learner.config.batch_size
    buf = EpisodeBuffer(learner.scheme(), env_info["n_agents"], env_info["episode_limit"], need * 2, spec.device)
    roll = Rollout(env, learner, buf, mode="explore")
    roll.schedule_t = schedule_t
    while len(buf) < need:
        roll.step()
    return lambda: buf.sample(need)
