"""glibc's malloc, set up for tensor work (applied when genlab is imported).

By default glibc serves every block above a threshold (128 KiB at first, raised as such blocks are freed)
with a fresh mmap, and gives freed memory at the top of the heap back to the system. Each new block then
costs a page fault per 4 KiB, and the kernel zero-fills every page: a RealNVP evaluating 500 images at a time
took ~800,000 page faults per 1,000 images. With the threshold fixed at its largest (32 MiB) and the trim
threshold at 1 GiB, freed blocks are reused instead. Measured on AMD EPYC family 26, one thread: RealNVP
bits/dim of 1,000 test images 2.35 -> 1.24 s, 1,000 samples 2.45 -> 1.22 s, a VAE's IW-NLL (k = 100) of
500 images 6.8 -> 4.2 s; training steps (batch 64) unchanged. The cost: the process keeps its peak memory.
`GENLAB_MALLOC_TUNING=0` leaves malloc alone.
"""
from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1    # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20   # glibc's maximum on 64-bit machines
TRIM_THRESHOLD = 1 << 30


def tune_malloc() -> bool:
    """Set the thresholds above; True where they were set (Linux with glibc, not switched off)."""
    if not sys.platform.startswith("linux") or os.environ.get("GENLAB_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):   # another C library (musl): leave it as it is
        return False
