"""Counter-based random numbers: a pure function of (keys...) on int64 tensors.

Each environment draws from its own stream keyed by (env seed, episode, step, ...), so a batch of B
environments produces exactly what B separate environments with the same seeds produce, whatever
the batch size or order, on CPU or CUDA.
"""
from __future__ import annotations

import torch

_M1 = 0x2545F4914F6CDD1D  # odd 64-bit constants below 2**63 (valid int64)
_M2 = 0x5851F42D4C957F2D
_GOLD = 0x1E3779B97F4A7C15  # golden-ratio increment (fits int64 when reduced)


def _lshr(x: torch.Tensor, n: int) -> torch.Tensor:
    """Logical right shift on int64 (torch's >> is arithmetic)."""
    return (x >> n) & ((1 << (64 - n)) - 1)


def mix(x: torch.Tensor) -> torch.Tensor:
    """A 64-bit avalanche mix (xorshift-multiply), wrapping int64 arithmetic."""
    x = x ^ _lshr(x, 33)
    x = x * _M1
    x = x ^ _lshr(x, 29)
    x = x * _M2
    return x ^ _lshr(x, 32)


def hash_keys(*keys: torch.Tensor | int) -> torch.Tensor:
    """Combine broadcastable int64 keys into one well-mixed int64 tensor."""
    h = torch.as_tensor(0x12345678, dtype=torch.int64)
    for k in keys:
        k = torch.as_tensor(k, dtype=torch.int64, device=h.device if not isinstance(k, torch.Tensor) else k.device)
        h = mix(h.to(k.device) ^ (k + _GOLD))
    return h


def uniform(h: torch.Tensor) -> torch.Tensor:
    """Map hashed int64 values to float32 uniforms in [0, 1)."""
    return (_lshr(h, 40).to(torch.float32)) * (1.0 / (1 << 24))


def randint(h: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """Integers in [low, high) from hashed values."""
    return low + (_lshr(h, 33) % (high - low))
