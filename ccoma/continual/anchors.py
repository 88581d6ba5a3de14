"""Anchors toward the pre-deployment weights: an L2 pull, or EWC's Fisher-weighted pull.

The penalty for network ``n`` is ``weight/2 * sum_i F_i (theta_i - theta*_i)^2`` over the parameters
that still learn, with ``F = 1`` for L2 and, for EWC, ``F`` the diagonal empirical Fisher:

    F_i = mean over episodes e of (d l_e / d theta_i)^2

where ``l_e`` is the learner's per-episode loss from ``learner.fisher_losses`` - for an actor the
negative log-likelihood of the actions its behaviour policy took (the score function), for a critic
or a mixer 1/2 sum_t of its squared TD errors with the targets held fixed (so the gradient is
sum_t td_t dQ_t/dtheta). Each episode's gradient is squared on its own (per-sample scores, not the
square of a batch mean), with no clipping and no optimiser step. The episodes come from the training
distribution, played by the trained learner's deployed behaviour policy. The penalty is added,
through ``learner.add_regularizer``, once per update to the loss that trains that network.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
import torch.nn as nn

from ccoma.errors import ConfigError


def fisher_diagonal(learner, sample_batch: Callable[[], dict], batches: int,
                    t_env: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """Diagonal Fisher ``{network: {param name: tensor}}`` for the parameters that currently learn,
    from ``batches`` batches of episodes (``sample_batch()``; each episode is one sample)."""
    live = {n: [(k, p) for k, p in net.named_parameters() if p.requires_grad]
            for n, net in learner.networks().items()}
    sums = {n: {k: torch.zeros_like(p) for k, p in ps} for n, ps in live.items() if ps}
    count = 0
    for _ in range(batches):
        batch = sample_batch()
        for e in range(batch["filled"].shape[0]):
            one = {k: v[e:e + 1] for k, v in batch.items()}
            losses = learner.fisher_losses(one, t_env)                 # {network: [1]}
            for name, loss in losses.items():
                if name not in sums or not loss.requires_grad:
                    continue
                params = [p for _, p in live[name]]
                grads = torch.autograd.grad(loss.sum(), params, retain_graph=True, allow_unused=True)
                for (k, _), g in zip(live[name], grads):
                    if g is not None:
                        sums[name][k] += g.detach() ** 2
            count += 1
    return {n: {k: v / max(count, 1) for k, v in d.items()} for n, d in sums.items()}


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
