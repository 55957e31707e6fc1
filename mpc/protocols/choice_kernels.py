"""Compiled per-value steps of mpc.protocols.choices, one pass each instead of a dozen numpy
passes over all values (numba, cached on disk; imported only where comparisons go through
1-out-of-N OTs, so that other processes skip numba's import)."""

from __future__ import annotations

from numba import njit

from twofold.mpc.ring import U64


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
def offer_lists(own, low, size, with_state, shares, d, levels, table, masks, fresh, repeat,
                out):
    """out[e]: the sender's list for value e, from its block bits and state share (the key),
    the receiver's d (the table holds every key's lists permuted by every d, 2^levels
    entries each), masked by its OT entries and XORed with its fresh share in every entry."""
    shift, mask = U64(low), (U64(1) << U64(size)) - U64(1)
    d_mask = (U64(1) << U64(levels)) - U64(1)
    for e in range(own.size):
        key = (own[e] >> shift) & mask
        if with_state:
            key |= U64(shares[e]) << U64(size)
        word = table[(key << U64(levels)) | (U64(d[e]) & d_mask)] ^ masks[e]
        out[e] = word ^ (U64(fresh[e]) * repeat)


@njit(cache=True, nogil=True)
def read_lists(offered, index, width, entry, out):
    """out[e]: the receiver's share, entry index[e] (`width` bits) of its list unmasked."""
    keep = (U64(1) << U64(width)) - U64(1)
    for e in range(offered.size):
        out[e] = ((U64(offered[e]) >> (U64(index[e]) * U64(width))) & keep) ^ U64(entry[e])
