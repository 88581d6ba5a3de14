"""Mixers: how per-agent utilities combine into Q_tot. IQL has none, VDN sums, QMIX mixes monotonically.

Every mixer maps agent Qs ``[B, T, N]`` and states ``[B, T, S]`` to ``[B, T]``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ccoma.algos.fused_gru import runs_fused


class _ELU(torch.autograd.Function):
    """ELU (alpha = 1) with expm1 taken in float64 and rounded once to float32.

    ATen's float32 ``expm1`` on CPU costs ~11 ns a number whatever the input (0.8-0.9 ms for the
    [~2,300, 32] hidden layer of a QMIX batch, twice an update; its float64 ``expm1`` ~1.4 ns), and
    rounds to within an ulp, not always as float64-then-round does. So this is another rounding,
    used only where the fused unroll runs (``--fused-gru``; float32 inputs, so ``double()`` copies).
    The gradient is ATen's formula, g for x > 0 and g * exp(x) otherwise, as g * exp(min(x, 0)).
    Clamps and sums, not ``torch.where`` (~4 ns a number here)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.expm1(x.double().clamp_(max=0)).to(x.dtype).add_(x.clamp(min=0))   # one of the two is 0

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(max=0))


def elu(x: torch.Tensor) -> torch.Tensor:
    """``F.elu``, or with the fused unroll on (CPU float32) :class:`_ELU`'s cheaper rounding."""
    return _ELU.apply(x) if runs_fused(x) else F.elu(x)


class VDNMixer(nn.Module):
    """Q_tot = sum of agent utilities (Sunehag et al. 2018)."""

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        return agent_qs.sum(-1)


class QMixer(nn.Module):
    """QMIX (Rashid et al. 2018): a one-hidden-layer mixing network whose weights come from
    hypernetworks of the state. abs() keeps every weight non-negative, so dQ_tot/dQ_a >= 0 and the
    per-agent argmax is the joint argmax; biases are free (the last one is a state-value network).
    """

    def __init__(self, n_agents: int, state_dim: int, embed_dim: int = 32, hypernet_dim: int = 64):
        super().__init__()
        self.n_agents, self.embed_dim = n_agents, embed_dim
        self.hyper_w1 = nn.Sequential(nn.Linear(state_dim, hypernet_dim), nn.ReLU(),
                                      nn.Linear(hypernet_dim, n_agents * embed_dim))
        self.hyper_w2 = nn.Sequential(nn.Linear(state_dim, hypernet_dim), nn.ReLU(),
                                      nn.Linear(hypernet_dim, embed_dim))
        self.hyper_b1 = nn.Linear(state_dim, embed_dim)
        self.value = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1))

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        # The per-row products q . W1 and hidden . w2 are tiny (N x E, E x 1): broadcast multiply and
        # sum them rather than calling bmm, which costs ~3x more on CPU for thousands of tiny matrices.
        lead = agent_qs.shape[:-1]
        s = states.reshape(-1, states.shape[-1])                            # [M, S]
        q = agent_qs.reshape(-1, self.n_agents, 1)                         # [M, N, 1]
        w1 = self.hyper_w1(s).abs().view(-1, self.n_agents, self.embed_dim)  # [M, N, E]
        b1 = self.hyper_b1(s)                                               # [M, E]
        hidden = elu((q * w1).sum(1) + b1)                                  # [M, E]
        w2 = self.hyper_w2(s).abs()                                         # [M, E]
        y = (hidden * w2).sum(-1) + self.value(s).view(-1)
        return y.view(lead)


def make_mixer(kind: str, n_agents: int, state_dim: int, embed_dim: int = 32,
               hypernet_dim: int = 64) -> nn.Module | None:
    if kind == "none":
        return None
    if kind == "vdn":
        return VDNMixer()
    if kind == "qmix":
        return QMixer(n_agents, state_dim, embed_dim, hypernet_dim)
    raise ValueError(f"unknown mixer '{kind}' (known: none, vdn, qmix)")
