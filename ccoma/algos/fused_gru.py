"""The learners' GRU unroll on CPU: whole sequences in one C call, forward and backward.

``torch.gru`` on CPU walks the time steps in C++ but runs each step as a dozen ATen operators (the
hidden product, chunks, two sigmoids, a tanh, the blend), each with its own dispatch and, when
training, its own autograd node; its backward then replays those nodes step by step. For the
learners' shapes (160 sequences of 121 steps, 64 units) that bookkeeping and the memory traffic of
the full-size intermediates cost more than the arithmetic. ``_gru.c`` does the same layer as one
loop over the steps: per step the input and hidden products (torch's own BLAS ``sgemm_``, called
through a function pointer) and then every gate of a row in one vectorised pass, keeping the gates for
a backward pass that accumulates the weight gradients step by step.

It also skips padding. A replay batch is padded to its longest episode, and about half its slots
are padding whose outputs the learner's masked loss ignores. Given each episode's slot count, the
agents' fc1 and GRU run only on the slots that matter, packed step by step with the longest episodes
first (:func:`episode_packing`, :func:`gru_packed`; ``RNNAgent.trunk(inputs, steps)``), so that the
sequences still running at each step are a prefix of that step's rows.

The numbers are the layer's (``torch.nn.GRU``'s equations and weight layout) but not ATen's bit for
bit: exp and tanh are this file's polynomials and the gradient sums are grouped differently (over
fewer rows, in another order, when padding is skipped), so results differ from ``torch.gru`` by
float rounding (~1e-7 relative; tests/algos/test_fused_gru.py bounds it). Jobs use it by default
since session 35 (``RunConfig.fused_gru``; ``--no-fused-gru`` turns it off): the speed of the
paper-budget jobs comes from it. In code it is off until asked (:func:`set_fused`, :func:`use_fused`),
and off it is ``torch.gru``, bit for bit the GRUCell walk that acting runs. The library is compiled at
first use with the system C compiler (``$CC``, else ``cc``) for this CPU and kept in ccoma's cache
folder; where that is impossible (no compiler,
no ``sgemm_`` exported by torch, a failed self-check), and on any device but the CPU or any dtype but
float32, :func:`gru_sequence` runs ``torch.gru`` instead (and the agents compute every slot).
:func:`status` says which, and why.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import torch

from ccoma.cache import cache_dir

log = logging.getLogger(__name__)

_SRC = Path(__file__).with_name("_gru.c")
_FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC")

_lock = threading.Lock()
_state: dict = {"tried": False, "lib": None, "gemm": None, "why": "not loaded yet", "on": False}


def _cpu_flags() -> str:
    """The CPU's feature flags (the library is built with -march=native, so it is this CPU's)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def _torch_sgemm() -> int:
    """The address of the Fortran BLAS ``sgemm_`` that torch's CPU library exports."""
    libdir = Path(torch.__file__).parent / "lib"
    for name in ("libtorch_cpu.so", "libtorch_cpu.dylib"):
        path = libdir / name
        if path.is_file():
            lib = ctypes.CDLL(str(path))
            try:
                return ctypes.cast(lib.sgemm_, ctypes.c_void_p).value
            except AttributeError:
                raise RuntimeError(f"{name} exports no sgemm_") from None
    raise RuntimeError(f"no libtorch_cpu in {libdir}")


def c_compiler() -> tuple[str, str | None]:
    """The C compiler the unroll is built with (``$CC``, else ``cc``) and its path, None when it is not
    on PATH."""
    cc = os.environ.get("CC") or "cc"
    return cc, shutil.which(cc)


def _build(source: Path = _SRC, stem: str = "gru") -> Path:
    """Compile ``source`` (``_gru.c``; ``_critic.c`` for :mod:`ccoma.algos.fused_critic`) for this CPU
    unless the cache already holds it; returns the library. The cache key is the source, the flags and
    this CPU's features (a library built with -march=native runs only where those exist); a cached
    build needs no compiler, and the self-check vets it."""
    import platform

    src = source.read_bytes()
    key = hashlib.sha256(b"\0".join([src, " ".join(_FLAGS).encode(), _cpu_flags().encode(),
                                     f"{sys.platform}-{platform.machine()}".encode()])).hexdigest()[:16]
    folder = cache_dir()
    so = folder / f"{stem}-{key}.so"
    if so.is_file():
        return so
    cc, found = c_compiler()
    if found is None:
        raise RuntimeError(f"no C compiler ({cc}) on PATH")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}-", suffix=".so", dir=folder)
    os.close(fd)
    try:
        out = subprocess.run([cc, *_FLAGS, "-o", tmp, str(source)], capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            last = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"{cc} failed: {last[0]}")
        os.replace(tmp, so)                      # whole or absent, whoever compiles at the same time
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return so


def _bind(lib: ctypes.CDLL) -> None:
    p, i = ctypes.c_void_p, ctypes.c_int
    lib.ccoma_gru_forward.argtypes = [p, i, p, i, i] + [p] * 8 + [i, p, p]
    lib.ccoma_gru_forward.restype = None
    lib.ccoma_gru_backward.argtypes = [p, i, p, i, i] + [p] * 14
    lib.ccoma_gru_backward.restype = ctypes.c_int


def _self_check() -> None:
    """A small layer through both paths: outputs and gradients must agree (a wrong BLAS integer width,
    a miscompiled library or a changed torch would fail here, not in training). Gradients on, whatever
    the caller's mode (the first use may be a forward pass under ``no_grad``)."""
    with torch.inference_mode(False), torch.enable_grad():
        _check_against_torch()


def _check_against_torch() -> None:
    """Sequences of lengths 5, 5, 4, 2, 2, 1, 1 (longest first, as packed), padded for torch.gru: the
    running slots' outputs and every gradient (the padding's output gradient zero) must agree."""
    g = torch.Generator().manual_seed(0)
    t, m, i, h = 5, 7, 6, 8
    lengths = torch.tensor([5, 5, 4, 2, 2, 1, 1])
    running = torch.arange(t)[:, None] < lengths[None, :]                          # [T, M]
    x = torch.randn(t, m, i, generator=g, requires_grad=True)
    ws = [torch.randn(3 * h, i, generator=g), torch.randn(3 * h, h, generator=g),
          torch.randn(3 * h, generator=g), torch.randn(3 * h, generator=g)]
    ws = [w.mul_(0.3).requires_grad_() for w in ws]
    dy = torch.randn(t, m, h, generator=g) * running[..., None]
    got = _GRUSequence.apply(x[running], running.sum(1).to(torch.int32), *ws)      # packed: step-major
    grads = torch.autograd.grad((got * dy[running]).sum(), [x, *ws])
    ref = _torch_gru(x, *ws)
    ref_grads = torch.autograd.grad((ref * dy).sum(), [x, *ws])
    for a, b in zip((got, *grads), (ref[running], *ref_grads)):
        if not torch.allclose(a, b, rtol=1e-4, atol=1e-5):
            raise RuntimeError(f"self-check failed (max difference {float((a - b).abs().max()):.2e})")


def load_library(state: dict, lock, source: Path, stem: str, bind, check, ok: str, fallback: str):
    """Build (or find cached), bind and self-check one of ccoma's C libraries, once per process.

    ``state`` holds ``tried``, ``lib``, ``gemm`` (torch's ``sgemm_``) and ``why``: ``ok`` when it
    loaded, else ``"<fallback> (<the reason>)"``, logged once; ``lib`` is then None and the caller
    runs its torch path. Returns the library or None."""
    if state["tried"]:
        return state["lib"]
    with lock:
        if state["tried"]:
            return state["lib"]
        try:
            state["gemm"] = _torch_sgemm()
            lib = ctypes.CDLL(str(_build(source, stem)))
            bind(lib)
            state["lib"] = lib
            check()
            state["why"] = ok
        except Exception as exc:  # noqa: BLE001 - any failure means the torch path, said once
            state["lib"] = None
            state["why"] = f"{fallback} ({exc})"
            log.info("ccoma: the %s C library did not load, so %s runs: %s", stem, fallback, exc)
        state["tried"] = True
    return state["lib"]


def _load() -> ctypes.CDLL | None:
    return load_library(_state, _lock, _SRC, "gru", _bind, _self_check, "fused C unroll", "torch.gru")


def status() -> str:
    """Which unroll the learners use on CPU, and why."""
    if not _on():
        return "torch.gru (fused unroll off)"
    _load()
    return _state["why"]


def _on() -> bool:
    return _state["on"]


def set_fused(on: bool) -> None:
    """Use the fused unroll (or not) from now on in this process."""
    _state["on"] = bool(on)


@contextlib.contextmanager
def use_fused(on: bool):
    """Within the block, :func:`gru_sequence` uses the fused unroll only if ``on`` (and it loads)."""
    before = _state["on"]
    _state["on"] = bool(on)
    try:
        yield
    finally:
        _state["on"] = before


def _ptr(t: torch.Tensor) -> int:
    return t.data_ptr()


def _forward(x, rows, w_ih, w_hh, b_ih, b_hh, keep: bool):
    """The C forward pass over the packed layout (``_gru.c``): x [P, I] and ``rows`` (int32 [T], the
    rows of each step) -> hs [P, H], and every step's gates when ``keep`` (for a backward pass)."""
    x, w_ih, w_hh, b_ih, b_hh = (v.detach().contiguous() for v in (x, w_ih, w_hh, b_ih, b_hh))
    p, i = x.shape
    t, m = rows.numel(), int(rows[0])
    h = w_hh.shape[1]
    hs = x.new_empty(p, h)
    rzn = x.new_empty(p if keep else m, 3 * h)
    ghn = x.new_empty(p if keep else m, h)
    work = x.new_empty(2 * m * 3 * h)
    zeros = x.new_zeros(m, h)
    _state["lib"].ccoma_gru_forward(_state["gemm"], t, _ptr(rows), i, h, _ptr(x), _ptr(w_ih), _ptr(w_hh),
                                    _ptr(b_ih), _ptr(b_hh), _ptr(hs), _ptr(rzn), _ptr(ghn), int(keep), _ptr(work),
                                    _ptr(zeros))
    return hs, (x, rows, hs, rzn, ghn, w_ih, w_hh)


class _GRUSequence(torch.autograd.Function):
    """x [P, I] packed (``rows`` per step, see ``_gru.c``) -> hs [P, H] from a zero initial state;
    weights as torch.nn.GRU's layer 0."""

    @staticmethod
    def forward(ctx, x, rows, w_ih, w_hh, b_ih, b_hh):
        hs, saved = _forward(x, rows, w_ih, w_hh, b_ih, b_hh, keep=True)
        ctx.save_for_backward(*saved)
        return hs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dhs):
        lib = _state["lib"]
        x, rows, hs, rzn, ghn, w_ih, w_hh = ctx.saved_tensors
        t, m, i, h = rows.numel(), int(rows[0]), x.shape[1], w_hh.shape[1]
        dhs = dhs.contiguous()
        dx = torch.empty_like(x)
        dw_ih, dw_hh = torch.zeros_like(w_ih), torch.zeros_like(w_hh)
        db_ih, db_hh = x.new_zeros(3 * h), x.new_zeros(3 * h)
        work = x.new_empty(2 * m * 3 * h + m * h)
        zeros = x.new_zeros(m, h)
        rc = lib.ccoma_gru_backward(_state["gemm"], t, _ptr(rows), i, h, _ptr(dhs), _ptr(x), _ptr(hs), _ptr(rzn),
                                    _ptr(ghn), _ptr(w_ih), _ptr(w_hh), _ptr(dx), _ptr(dw_ih), _ptr(dw_hh),
                                    _ptr(db_ih), _ptr(db_hh), _ptr(work), _ptr(zeros))
        if rc != 0:
            raise MemoryError("the fused GRU's backward pass could not allocate its bias accumulators")
        return dx, None, dw_ih, dw_hh, db_ih, db_hh


def _packed(x, rows, w_ih, w_hh, b_ih, b_hh) -> torch.Tensor:
    if torch.is_grad_enabled() and any(v.requires_grad for v in (x, w_ih, w_hh, b_ih, b_hh)):
        return _GRUSequence.apply(x, rows, w_ih, w_hh, b_ih, b_hh)
    return _forward(x, rows, w_ih, w_hh, b_ih, b_hh, keep=False)[0]   # no gradient: no gates kept


def _torch_gru(x, w_ih, w_hh, b_ih, b_hh, train: bool = True) -> torch.Tensor:
    h0 = x.new_zeros(1, x.shape[1], w_hh.shape[1])
    if x.device.type != "cuda":
        return torch.gru(x, h0, [w_ih, w_hh, b_ih, b_hh], True, 1, 0.0, train, False, False)[0]
    # cuDNN copies weights given as separate tensors into one buffer at each call, and warns that this
    # may "greatly increase memory usage": here it is one small layer (~0.1 MB at 64 hidden units), so
    # the warning, seen on an H200 in session 38, is left out of users' logs
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
        return torch.gru(x, h0, [w_ih, w_hh, b_ih, b_hh], True, 1, 0.0, train, False, False)[0]


def runs_fused(x: torch.Tensor, *weights: torch.Tensor) -> bool:
    """Whether a layer over ``x`` with these weights runs the fused C unroll: it is on, it loaded, and
    everything is float32 on the CPU."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.numel() > 0
            and all(w.dtype == torch.float32 for w in weights) and _on() and _load() is not None)


def gru_sequence(x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor,
                 b_hh: torch.Tensor, train: bool = True) -> torch.Tensor:
    """One GRU layer over time-major sequences from a zero state: x [T, M, I] -> hs [T, M, H].

    The fused C unroll on CPU float32 when it is available and on, else ``torch.gru``."""
    if runs_fused(x, w_ih, w_hh, b_ih, b_hh):
        t, m, i = x.shape
        rows = torch.full((t,), m, dtype=torch.int32)
        return _packed(x.reshape(t * m, i), rows, w_ih, w_hh, b_ih, b_hh).view(t, m, -1)
    return _torch_gru(x, w_ih, w_hh, b_ih, b_hh, train)


def episode_packing(steps: torch.Tensor, t: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the slots that matter of a padded batch go in the packed layout of :func:`gru_packed`.

    ``steps`` [B]: how many leading slots of each of B episodes (T slots, N agents each, every agent a
    sequence) matter. Returns ``index`` [P], the packed rows' positions in the batch's rows
    ``[B * T * N]`` (episode-major), and ``rows`` int32 [T], the packed rows of each step: step by
    step, the episodes still running, longest first (ties in batch order), N agents each."""
    steps = steps.detach().to("cpu", torch.int64).clamp(0, t)
    order = torch.argsort(steps, descending=True, stable=True)                    # [B]
    running = steps[order][None, :] > torch.arange(t)[:, None]                    # [T, B], a prefix per step
    step, j = running.nonzero(as_tuple=True)                                      # step-major, longest first
    first = (order[j] * t + step) * n                                             # each slot's first agent row
    index = (first[:, None] + torch.arange(n)).reshape(-1)
    return index, (running.sum(1) * n).to(torch.int32)


def gru_packed(x: torch.Tensor, rows: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor,
               b_hh: torch.Tensor) -> torch.Tensor:
    """The layer over sequences of different lengths in the packed layout (see ``_gru.c``, and
    :func:`episode_packing`): x [P, I] -> hs [P, H]. The fused unroll only (:func:`runs_fused`).

    A padded batch's padding is not computed. Every packed slot, and every gradient when the
    padding's gradient is zero (a loss masked after each episode's end), is the layer's over the padded
    batch, up to float rounding: the products run over fewer rows in another order."""
    if rows.numel() == 0 or int(rows[0]) == 0:
        return x.new_zeros(0, w_hh.shape[1])
    return _packed(x, rows.to(torch.int32).contiguous(), w_ih, w_hh, b_ih, b_hh)
