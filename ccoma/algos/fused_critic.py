"""COMA's critic walk on CPU: a run of the critic's optimiser steps in one C call (``_critic.c``).

pymarl's COMA takes one critic step per time step of the batch, backwards, each on a few dozen rows
of a small MLP; :class:`ccoma.algos.coma._CriticByHand` already writes those steps out without
autograd, bit for bit the autograd step, but each still dispatches ~40 ATen operators whose overhead
is about half the step. ``_critic.c`` runs the same steps (the same loss, gradients, clipping and
RMSprop; products through torch's own BLAS ``sgemm_``) with nothing between them. Its sums and norms
are grouped differently from ATen's, so results differ from the by-hand walk by float rounding
(tests/algos/test_fused_critic.py bounds it): like the fused GRU unroll it is opt-in, and it follows
the same switch (``RunConfig.fused_gru``, ``--fused-gru``; :func:`ccoma.algos.fused_gru.set_fused`).

It is built and cached like the GRU's library (:func:`ccoma.algos.fused_gru._build`) and vetted by a
self-check against :class:`_CriticByHand` at load; where it cannot load (no compiler, a failed
self-check) the walk runs step by step as before, and :func:`status` says why.
"""
from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import torch

from ccoma.algos import fused_gru

_SRC = Path(__file__).with_name("_critic.c")
_lock = threading.Lock()
_state: dict = {"tried": False, "lib": None, "gemm": None, "why": "not loaded yet"}


def _bind(lib: ctypes.CDLL) -> None:
    p, i, f = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
    lib.ccoma_critic_walk.argtypes = [p, i, p, i, p, p, p, i, p, p, p, p, p, p, f, f, f, f, p, p, p, p]
    lib.ccoma_critic_walk.restype = ctypes.c_int


def _load() -> ctypes.CDLL | None:
    return fused_gru.load_library(_state, _lock, _SRC, "critic", _bind, _self_check, "fused C walk", "step by step")


def status() -> str:
    """How COMA's critic walk runs on CPU, and why."""
    if not fused_gru._on():
        return "step by step (fused unroll off)"
    _load()
    return _state["why"]


def runs_fused(x: torch.Tensor) -> bool:
    """Whether a walk over ``x`` runs in C: the switch is on, the library loaded, float32 on the CPU."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and fused_gru._on() and _load() is not None


def walk(hand, steps: list, x: torch.Tensor, taken: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
         count: torch.Tensor, q: torch.Tensor, loss: torch.Tensor, norm: torch.Tensor) -> None:
    """Take the critic steps ``steps`` (time indices, in that order) on ``hand``'s flat buffers
    (a :class:`ccoma.algos.coma._CriticByHand`): parameters, running averages and gradients change in
    place, as ``len(steps)`` calls of ``hand.step`` would change them.

    x [T, R, D], taken int64 [T, R], target and mask [T, R], count [T] (all contiguous float32 but
    ``taken``); writes q [T, R, A], loss [T] and norm [T] (the total norm before clipping) at those
    steps."""
    if not steps:
        return
    lib = _state["lib"]
    tensors = (x, taken, target, mask, count, q, loss, norm)
    if not all(t.is_contiguous() for t in tensors) or taken.dtype != torch.int64:
        raise ValueError("the fused critic walk needs contiguous inputs and int64 actions")
    dims = [hand.p[0].shape[1]] + [hand.p[2 * i].shape[0] for i in range(hand.n_layers)]
    r = x.shape[1]
    if x.shape[2] != dims[0] or q.shape[2] != dims[-1] or taken.shape[1] != r:
        raise ValueError(f"the fused critic walk got shapes x {tuple(x.shape)}, q {tuple(q.shape)}, taken "
                         f"{tuple(taken.shape)} for layers {dims}")
    c_dims = (ctypes.c_int * len(dims))(*dims)
    c_steps = (ctypes.c_int * len(steps))(*steps)
    work = x.new_empty(r * sum(dims[1:-1]) + 2 * r * max(dims[1:]))
    rc = lib.ccoma_critic_walk(_state["gemm"], hand.n_layers, c_dims, r, hand.flat_p.data_ptr(),
                               hand.flat_v.data_ptr(), hand.flat_g.data_ptr(), len(steps), c_steps,
                               x.data_ptr(), taken.data_ptr(), target.data_ptr(), mask.data_ptr(),
                               count.data_ptr(), hand.clip, hand.alpha, hand.eps, hand.lr, q.data_ptr(),
                               loss.data_ptr(), norm.data_ptr(), work.data_ptr())
    if rc != 0:
        raise ValueError("an action index outside the critic's outputs reached the fused critic walk")
    hand.pending += len(steps)
    hand.stepped = True


def _self_check() -> None:
    """A small critic (3 layers and the output layer alone), a few masked and unmasked steps both ways:
    Q values, losses, norms, parameters and running averages must agree with :class:`_CriticByHand`
    (a wrong BLAS integer width or a miscompiled library fails here, not in training). The caller's
    random stream is left as it was (a first use can fall between a seed and the draws it fixes)."""
    with torch.random.fork_rng(devices=[]):
        _check_against_by_hand()


def _check_against_by_hand() -> None:
    from ccoma.algos.coma import _CriticByHand

    g = torch.Generator().manual_seed(0)
    t_len, r, d, h, a = 4, 6, 9, 7, 5
    x = torch.randn(t_len, r, d, generator=g)
    taken = torch.randint(0, a, (t_len, r), generator=g)
    target = torch.randn(t_len, r, generator=g)
    mask = (torch.rand(t_len, r, generator=g) > 0.3).float()
    mask[1] = 1.0
    count = mask.sum(1)
    for n_layers in (3, 1):
        sizes = [d, h, h, a] if n_layers == 3 else [d, a]
        hands = []
        for _ in range(2):
            torch.manual_seed(1)
            layers = [torch.nn.Linear(i, o) for i, o in zip(sizes[:-1], sizes[1:])]
            params = [p for layer in layers for p in layer.parameters()]
            opt = torch.optim.RMSprop(params, lr=0.05, alpha=0.9, eps=1e-5, foreach=True)
            for p in params:
                p.grad = torch.zeros_like(p)
            opt.step()
            hands.append(_CriticByHand(layers, opt, 0.5))
        ref, got = hands
        q = torch.zeros(t_len, r, a)
        loss, norm = torch.zeros(t_len), torch.zeros(t_len)
        order = list(reversed(range(t_len)))
        walk(got, order, x, taken, target, mask, count, q, loss, norm)
        for t in order:
            q_t, l_t, n_t = ref.step(x[t].view(2, r // 2, d), taken[t].view(2, r // 2, 1), target[t].view(2, r // 2),
                                     mask[t].view(2, r // 2), float(count[t]))
            pairs = ((q[t], q_t.reshape(r, a)), (loss[t], l_t), (norm[t], torch.tensor(n_t)))
            for u, w in pairs:
                if not torch.allclose(u, w, rtol=1e-4, atol=1e-5):
                    raise RuntimeError(f"self-check failed (step {t}, max difference {float((u - w).abs().max()):.2e})")
        for u, w in ((got.flat_p, ref.flat_p), (got.flat_v, ref.flat_v), (got.flat_g, ref.flat_g)):
            if not torch.allclose(u, w, rtol=1e-4, atol=1e-6):
                raise RuntimeError(f"self-check failed (max difference {float((u - w).abs().max()):.2e})")
