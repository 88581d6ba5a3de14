"""Named seed streams: every random stream of a job is derived here from the run seed, in one place.

A job with run seed ``s`` draws its worlds and policies from separate streams, so that adding an
evaluation or a picture never changes what training sees, and so that the frozen and continual
deployments of one learner meet the same worlds. The formulas are kept as they were when the streams
were scattered through the job (results of earlier runs stay reproducible).
"""
from __future__ import annotations

# stream -> (multiplier, offset): seed = multiplier * run_seed + offset
STREAMS: dict[str, tuple[int, int]] = {
    "torch": (1, 0),             # torch's global generator: network initialisation, sampled actions
    "train_env": (1000, 0),      # the training stage's environments
    "deploy_env": (1000, 1),     # every deployment of a learner (frozen and continual meet the same worlds)
    "fisher": (1, 7),            # the episodes the EWC Fisher is estimated on
    "matrix": (1, 10_000),       # the performance matrix: greedy evaluations of every deployment phase
    "test": (1, 30_000),         # the greedy test curve (the headline metric), the same for every method
    "train_test": (1, 40_000),   # the greedy test curve over training (optional: Budget.train_test_points)
    "render": (1, 20_000),       # the battle pictures
}


def seed_for(run_seed: int, stream: str) -> int:
    """The seed of ``stream`` for a job whose run seed is ``run_seed``."""
    if stream not in STREAMS:
        raise KeyError(f"unknown seed stream '{stream}' (known: {', '.join(STREAMS)})")
    mult, offset = STREAMS[stream]
    return mult * int(run_seed) + offset
