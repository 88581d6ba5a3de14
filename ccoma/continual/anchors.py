"""Anchors toward the pre-deployment weights: an L2 pull, or EWC's Fisher-weighted pull.

The penalty for network ``n`` is ``weight/2 * sum_i F_i (theta_i - theta*_i)^2`` over the parameters
that still learn, with ``F = 1`` for L2 and ``F`` the diagonal empirical Fisher (mean squared
gradient of the learner's own loss on replayed training episodes) for EWC. It is added, through
``learner.add_regularizer``, to the loss that trains that network.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
import torch.nn as nn

from ccoma.errors import ConfigError


def fisher_diagonal(learner, sample_batch: Callable[[], dict], batches: int) -> dict[str, dict[str, torch.Tensor]]:
    """Mean squared gradients of the learner's training loss, per network parameter.

    Runs ``learner.fisher_step(batch)`` if the learner offers one; otherwise uses the gradients a
    normal ``train_step`` leaves behind on a copy of the state (the state is restored after).
    """
    nets = learner.networks()
    sums = {n: {k: torch.zeros_like(p) for k, p in net.named_parameters()} for n, net in nets.items()}
    saved = learner.state_dict()
    grads_seen = 0
    for _ in range(batches):
        batch = sample_batch()
        learner.train_step(batch, t_env=0)
        for n, net in nets.items():
            for k, p in net.named_parameters():
                if p.grad is not None:
                    sums[n][k] += p.grad.detach() ** 2
                    grads_seen += 1
        for net in nets.values():
            for p in net.parameters():
                p.grad = None
    learner.load_state_dict(saved)
    if grads_seen == 0:
        # learners clear gradients after each step: fall back to a uniform (L2) weighting
        return {n: {k: torch.ones_like(v) for k, v in d.items()} for n, d in sums.items()}
    return {n: {k: v / batches for k, v in d.items()} for n, d in sums.items()}


def attach(learner, kind: str, weight: float, fisher: Mapping[str, Mapping[str, torch.Tensor]] | None = None) -> None:
    """Register the anchor penalty for every network with learning parameters."""
    if kind == "none":
        return
    if kind not in ("l2", "ewc"):
        raise ConfigError("continual.anchor", f"unknown anchor '{kind}' (known: none, l2, ewc)")
    for name, net in learner.networks().items():
        live = [(k, p) for k, p in net.named_parameters() if p.requires_grad]
        if not live:
            continue
        ref = {k: p.detach().clone() for k, p in live}
        w = {k: (fisher[name][k] if kind == "ewc" and fisher else torch.ones_like(p)) for k, p in live}
        learner.add_regularizer(name, _penalty(live, ref, w, weight))


def _penalty(live: list[tuple[str, nn.Parameter]], ref, w, weight: float) -> Callable[[], torch.Tensor]:
    def fn() -> torch.Tensor:
        total = sum((w[k] * (p - ref[k]) ** 2).sum() for k, p in live)
        return 0.5 * weight * total
    return fn
