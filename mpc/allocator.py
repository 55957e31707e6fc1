"""glibc malloc settings for processes that churn through large arrays (servers, dealer).

By default glibc hands every block above its mmap threshold (128 KiB, rising to at most 32 MiB
as such blocks are freed) to the kernel on free, and returns free memory above 128 KiB at the
top of the heap; the next array of that size then page-faults on every 4 KiB page it touches.
A protocol step at a million elements allocates and frees tens of 8 MiB arrays, so that cost
is a large part of a fixed-point product (docs/mpc.md, "Measurements behind design choices").
Fixing both thresholds keeps arrays up to 32 MiB on the heap for reuse and up to 256 MiB of
free heap in the process; larger arrays are still mapped and unmapped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's largest accepted value on 64-bit systems
TRIM_THRESHOLD_BYTES = 256 << 20


def keep_large_blocks() -> bool:
    """Apply the settings; False where the C library is not glibc (nothing to do there)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
                and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
