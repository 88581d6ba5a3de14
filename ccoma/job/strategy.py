"""The continual strategy: what learns in each stage, how the agents act, and the anchor.

Training: everything learns, with the behaviour policy on the learner's own exploration schedule.
Deployment: the trained weights, then per mode (see :mod:`ccoma.job.spec`) which parameters learn
(none, or the trainable set) and which policy acts (greedy or behaviour).
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

    mode: str         # "explore" (behaviour policy) or "greedy"
    learn: bool
    t_offset: int     # added to the stage's step to give the learner's schedule step


def acting(stage: Stage, continual: ContinualConfig, train_steps: int) -> Acting:
    if stage.is_train:
        return Acting("explore", True, 0)
    explore = stage.mode == "frozen-explore" or (stage.mode == "continual" and continual.explore)
    return Acting("explore" if explore else "greedy", stage.learns, train_steps)


def prepare(learner, stage: Stage, continual: ContinualConfig, trained: dict | None) -> None:
    """Load the trained weights for a deployment and set which parameters learn."""
    if stage.is_train:
        set_all(learner.networks(), True)
        return
    learner.load_state_dict(trained)
    learner.clear_regularizers()
    if stage.mode == "continual":
        apply_trainable(learner.networks(), continual.trainable)
    else:
        set_all(learner.networks(), False)


def anchor(learner, continual: ContinualConfig, fisher_episodes=None) -> None:
    """Attach the anchor toward the current (trained) weights. ``fisher_episodes()`` returns a
    callable that samples a batch of training-distribution episodes (EWC only)."""
    if continual.anchor == "none":
        return
    fisher = None
    if continual.anchor == "ewc":
        sample = fisher_episodes()
        fisher = anchors.fisher_diagonal(learner, sample, continual.fisher_batches)
    anchors.attach(learner, continual.anchor, continual.anchor_weight, fisher)
