"""Compiled per-value steps of mpc.protocols.choices, one pass each instead of a dozen numpy
passes over all values (numba, cached on disk; imported only where comparisons go through
1-out-of-N OTs, so that other processes skip numba's import)."""

from __future__ import annotations

import numpy as np
from numba import njit

U64 = np.uint64


@njit(cache=True, nogil=True)
def block_inputs(own, low, size, with_state, shares, index, out):
    """out[e] = d of value e: its bits low .. low + size of own[e], with its state share above
    them (with_state), XOR the random index of its OT."""
    shift, width, mask = U64(low), U64(size), (U64(1) << U64(size)) - U64(1)
    for e in range(own.size):
        key = (own[e] >> shift) & mask
        if with_state:
            key |= U64(shares[e]) << width
        out[e] = key ^ U64(index[e])


@njit(cache=True, nogil=True)
def offer_lists(own, low, size, with_state, shares, d, table, masks, fresh, out):
    """out[e]: the sender's list for value e, from its block bits and state share (the key),
    the receiver's d (the table holds every key's list permuted by every d), masked by its
    OT bits and XORed with its fresh share (all ones in the list's width when set)."""
    shift, mask = U64(low), (U64(1) << U64(size)) - U64(1)
    width = U64(size + with_state)
    d_mask = (U64(1) << width) - U64(1)
    ones = U64(0xFFFFFFFFFFFFFFFF) >> (U64(64) - (U64(1) << width))
    for e in range(own.size):
        key = (own[e] >> shift) & mask
        if with_state:
            key |= U64(shares[e]) << U64(size)
        word = table[(key << width) | (U64(d[e]) & d_mask)] ^ masks[e]
        if fresh[e]:
            word ^= ones
        out[e] = word


@njit(cache=True, nogil=True)
def read_lists(offered, index, bit, out):
    """out[e]: the receiver's share of the next state, entry index[e] of its list unmasked."""
    for e in range(offered.size):
        out[e] = ((U64(offered[e]) >> U64(index[e])) & U64(1)) ^ U64(bit[e])
