"""Keep a job's freed memory in the process (glibc on Linux) instead of handing it back to the system.

A learner update allocates and frees the same few hundred megabytes of temporaries every time (the
batch, the unroll's activations and gradients: tensors of 1-10 MB). glibc's malloc by default serves
blocks above a sliding threshold with fresh ``mmap`` pages and returns them, and trims the heap's free
top, as soon as they are freed, so the next update touches new pages again and the kernel zeroes
and maps them one 4 KiB page fault at a time. On the 2-core VMs this project is measured on that cost
~2,000-3,500 page faults and ~5-12 ms of system time per QMIX update (~70-85 ms), and touching
fresh memory there is erratic (a 5 MB ``fill_`` took 0.3-25 ms); docs/throughput.md has the numbers.

:func:`keep_freed_memory` sets ``M_MMAP_THRESHOLD`` to glibc's largest (32 MiB on 64-bit: smaller
blocks come from the heap; the replay's storage, larger, still gets its own mapping) and
``M_TRIM_THRESHOLD`` to 512 MiB (the heap keeps up to that much free memory at its top). Setting
either fixes both, which is why both are set: the trim threshold alone would freeze the mmap threshold
at its 128 KiB default, so every tensor above 128 KiB would be mapped and unmapped per use (setting
``MALLOC_TRIM_THRESHOLD_`` alone in the environment measured slower than the default). It changes
where memory comes from, not what is computed. The cost is memory held after a peak (at most the
trim threshold per process, on top of the working set); a paper-budget QMIX job's peak resident
memory measured the same (~2.1 GB).

A job calls it when it starts (:class:`ccoma.job.runner.Job`); ``CCOMA_MALLOC_TUNING=0`` leaves
glibc's defaults. Elsewhere (macOS, musl, Windows) it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

M_TRIM_THRESHOLD = -1   # glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20   # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: mallopt refuses anything larger
TRIM_THRESHOLD = 512 << 20

@functools.cache
def keep_freed_memory() -> bool:
    """Set glibc's thresholds as above (once per process); True when they are set."""
    if not sys.platform.startswith("linux") or os.environ.get("CCOMA_MALLOC_TUNING", "1").strip() in ("0", "false", "no", "off"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
