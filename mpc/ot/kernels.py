"""Compiled loops numpy cannot vectorise well: bit-matrix transposition, and the XOR sums of
OT extension. Compiled once by numba and cached on disk (the first use in a fresh install
takes a second or so)."""

from __future__ import annotations

import numpy as np
from numba import njit

U64 = np.uint64


@njit(cache=True, nogil=True)
def _transpose64(a):
    """In place: bit j of a[i] becomes bit i of a[j] (a 64 x 64 bit matrix)."""
    width = 32
    mask = U64(0x00000000FFFFFFFF)
    while width != 0:
        start = 0
        while start < 64:
            for i in range(start, start + width):
                swap = ((a[i] >> U64(width)) ^ a[i + width]) & mask
                a[i + width] ^= swap
                a[i] ^= swap << U64(width)
            start += 2 * width
        width >>= 1
        mask ^= mask << U64(width)


@njit(cache=True, nogil=True)
def transpose_rows(rows, out):
    """rows: (128, w) uint64, bit t of word v in row r = entry (64 v + t, r) of an m x 128 bit
    matrix (m = 64 w); out: (m, 2) uint64, its rows (bit r of row j in word r // 64)."""
    words = rows.shape[1]
    tile = np.empty(64, np.uint64)
    for v in range(words):
        for half in range(2):
            for i in range(64):
                tile[i] = rows[64 * half + i, v]
            _transpose64(tile)
            for i in range(64):
                out[64 * v + i, half] = tile[i]


@njit(cache=True, nogil=True)
def leaf_sums(leaves, bits, total, weighted):
    """For each block b: total[b] = XOR of leaves[b, x] over all x, and weighted[b, i] = XOR of
    leaves[b, x] over the x whose bit i is set (the sums of SoftSpokenOT's small-field VOLE, x
    ranging over F_2^bits). Whole-row XORs, which numba turns into vector instructions."""
    blocks, count = leaves.shape[0], leaves.shape[1]
    for b in range(blocks):
        whole = total[b]
        whole[:] = leaves[b, 0]
        for i in range(bits):
            weighted[b, i, :] = 0
        for x in range(1, count):
            row = leaves[b, x]
            whole ^= row
            for i in range(bits):
                if (x >> i) & 1:
                    part = weighted[b, i]
                    part ^= row
