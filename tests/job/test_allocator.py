"""ccoma/allocator.py: a job keeps freed memory in the process (glibc), so the next update reuses its pages."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                                reason="glibc only")

# malloc 8 MiB, touch it, free it; twice. The second round's page faults say whether the first round's
# pages were kept: with glibc's defaults the first block is an mmap given back at free(), so the second
# round faults in fresh pages; with the thresholds set both come from the heap, kept after free().
PROBE = r"""
import ctypes, json, resource, sys
from ccoma.allocator import keep_freed_memory
ok = keep_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
size = 8 << 20
faults = []
for _ in range(2):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    p = libc.malloc(size)
    ctypes.memset(p, 1, size)
    libc.free(p)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"set": ok, "faults": faults, "again": keep_freed_memory()}))
"""


def _probe(**env) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **env}, capture_output=True, text=True,
                         timeout=60, check=True)
    return json.loads(out.stdout)


def test_freed_blocks_are_reused_without_new_page_faults():
    pages = (8 << 20) // os.sysconf("SC_PAGE_SIZE")
    tuned = _probe(CCOMA_MALLOC_TUNING="1")
    default = _probe(CCOMA_MALLOC_TUNING="0")
    assert tuned["set"] and tuned["again"] and not default["set"]
    assert tuned["faults"][0] >= pages // 2          # the first round touches new pages either way
    assert tuned["faults"][1] < pages // 20          # then reuses them
    assert default["faults"][1] >= pages // 2        # glibc's defaults gave them back
