"""Compiled loops numpy cannot vectorise well: bit-matrix transposition, the XOR sums of OT
extension, the pad hash's row steps and the OT products' per-word steps. Compiled once by
numba and cached on disk (the first use in a fresh install takes a second or so)."""

from __future__ import annotations

import numpy as np
from numba import njit

from twofold.mpc.ring import U64

TRANSPOSE_LANES = 32  # tile columns swapped at once (measured best of 16, 32, 64, 128)


@njit(cache=True, nogil=True)
def transpose_rows(rows, out):
    """rows: (128, w) uint64, bit t of word v in row r = entry (64 v + t, r) of an m x 128 bit
    matrix (m = 64 w); out: (m, 2) uint64, its rows (bit r of row j in word r // 64).

    Each word column v is two 64 x 64 bit tiles (rows 0-63 and 64-127), transposed by six
    rounds of masked swaps (rows i and i + width exchange their width-bit halves). The swaps run
    on TRANSPOSE_LANES columns at once, copied into a small tile: the inner loop over columns
    is what the compiler turns into vector instructions (3.3 times as fast as one tile at a
    time: 2.1 ns per COT against 7)."""
    words = rows.shape[1]
    tile = np.empty((128, TRANSPOSE_LANES), np.uint64)
    for v0 in range(0, words, TRANSPOSE_LANES):
        n = min(TRANSPOSE_LANES, words - v0)
        for r in range(128):
            source, target = rows[r, v0:v0 + n], tile[r]
            if n == TRANSPOSE_LANES:  # a fixed trip count: vector loads
                for lane in range(TRANSPOSE_LANES):
                    target[lane] = source[lane]
            else:
                for lane in range(n):
                    target[lane] = source[lane]
        width = 32
        mask = U64(0x00000000FFFFFFFF)
        while width != 0:
            shift = U64(width)
            for start in range(0, 128, 2 * width):
                for i in range(start, start + width):
                    low, high = tile[i], tile[i + width]
                    for lane in range(TRANSPOSE_LANES):
                        swap = ((low[lane] >> shift) ^ high[lane]) & mask
                        high[lane] ^= swap
                        low[lane] ^= swap << shift
            width >>= 1
            mask ^= mask << U64(width)
        block = out[64 * v0:64 * (v0 + n)]  # a view from 0: simpler indices, faster stores
        for lane in range(n):
            base = 64 * lane
            for i in range(64):
                block[base + i, 0] = tile[i, lane]
                block[base + i, 1] = tile[64 + i, lane]


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


@njit(cache=True, nogil=True)
def add_digit_corrections(weighted, total, message, digit_bits):
    """The SoftSpokenOT sender's last step, in place: weighted[b, i] ^= total[b] ^ d_b for
    every block b whose digit has bit i set (d_0 = 0, d_b = message[b - 1])."""
    blocks, bits, words = weighted.shape
    for b in range(blocks):
        whole = total[b]
        for i in range(bits):
            if digit_bits[b, i]:
                target = weighted[b, i]
                if b == 0:
                    for v in range(words):
                        target[v] ^= whole[v]
                else:
                    sent = message[b - 1]
                    for v in range(words):
                        target[v] ^= whole[v] ^ sent[v]


@njit(cache=True, nogil=True)
def xor_delta(rows, delta, selected, out):
    """out[j] = rows[j] ^ delta[j], or rows[j] where selected[j] is 0. delta and selected hold
    one row per COT or a single one for all (a stored batch has its own Delta)."""
    many_deltas, many_selected = delta.shape[0] > 1, selected.shape[0] > 1
    for j in range(rows.shape[0]):
        d = j if many_deltas else 0
        mask = U64(0) - U64(selected[j if many_selected else 0])
        out[j, 0] = rows[j, 0] ^ (delta[d, 0] & mask)
        out[j, 1] = rows[j, 1] ^ (delta[d, 1] & mask)


@njit(cache=True, nogil=True)
def tweak_blocks(permuted, first, high, out):
    """The pad hash's second AES input: out[j, k] = permuted[j] ^ (first + j, high[k]).
    For one or two blocks per row, loops run over rows innermost, which the compiler
    vectorises; for more, over blocks (in memory order: rows apart would thrash the cache)."""
    count, blocks = permuted.shape[0], high.shape[0]
    base = U64(first)
    if blocks <= 2:
        flat = out.reshape(count * blocks, 2)
        for k in range(blocks):
            word = high[k]
            for j in range(count):
                flat[j * blocks + k, 0] = permuted[j, 0] ^ (base + U64(j))
                flat[j * blocks + k, 1] = permuted[j, 1] ^ word
    else:
        for j in range(count):
            low, upper = permuted[j, 0] ^ (base + U64(j)), permuted[j, 1]
            for k in range(blocks):
                out[j, k, 0] = low
                out[j, k, 1] = upper ^ high[k]


@njit(cache=True, nogil=True)
def finish_pads(hashed, permuted, out):
    """out[j, w] = hashed[j, w] ^ permuted[j, w % 2] for the out.shape[1] words wanted (the
    loop order as in tweak_blocks)."""
    count, words = out.shape
    if words <= 4:
        for w in range(words):
            half = w & 1
            for j in range(count):
                out[j, w] = hashed[j, w] ^ permuted[j, half]
    else:
        for j in range(count):
            low, upper = permuted[j, 0], permuted[j, 1]
            for w in range(0, words - 1, 2):
                out[j, w] = hashed[j, w] ^ low
                out[j, w + 1] = hashed[j, w + 1] ^ upper
            if words & 1:
                out[j, words - 1] = hashed[j, words - 1] ^ low


@njit(cache=True, nogil=True)
def sender_products(pad0, pad1, correlation, offset, shifts):
    """The OT product sender's step, in place over (items, positions, width) arrays: pad1
    becomes the corrections tau = p0 - p1 + D and pad0 its shares (M - p0) << shift. D and M
    are 3-d with each axis full or of length 1 (broadcast here: numpy's broadcasting runs its
    inner loop once per word when the width is 1). Positions run innermost for narrow
    products, words for wide ones (memory order)."""
    items, positions, width = pad0.shape
    many_c, many_o = correlation.shape[1] > 1, offset.shape[1] > 1
    wide_c, wide_o = correlation.shape[2] > 1, offset.shape[2] > 1
    for i in range(items):
        ci = i if correlation.shape[0] > 1 else 0
        oi = i if offset.shape[0] > 1 else 0
        if width <= 2:
            for k in range(width):
                ck = k if wide_c else 0
                ok = k if wide_o else 0
                for p in range(positions):
                    p0 = pad0[i, p, k]
                    pad1[i, p, k] = p0 - pad1[i, p, k] + correlation[ci, p if many_c else 0, ck]
                    pad0[i, p, k] = (offset[oi, p if many_o else 0, ok] - p0) << shifts[p]
        else:
            for p in range(positions):
                cp, op, shift = p if many_c else 0, p if many_o else 0, shifts[p]
                for k in range(width):
                    p0 = pad0[i, p, k]
                    pad1[i, p, k] = p0 - pad1[i, p, k] + correlation[ci, cp, k if wide_c else 0]
                    pad0[i, p, k] = (offset[oi, op, k if wide_o else 0] - p0) << shift


@njit(cache=True, nogil=True)
def receiver_products(pad, choices, theirs, shifts):
    """The receiver's step, in place: pad becomes (p_c + c * tau) << shift, c the choice of
    each (item, position), in one pass instead of numpy's four (loop order as for the
    sender)."""
    items, positions, width = pad.shape
    for i in range(items):
        base = i * positions
        if width <= 2:
            for k in range(width):
                for p in range(positions):
                    chosen = theirs[i, p, k] & (U64(0) - U64(choices[base + p]))
                    pad[i, p, k] = (pad[i, p, k] + chosen) << shifts[p]
        else:
            for p in range(positions):
                mask, shift = U64(0) - U64(choices[base + p]), shifts[p]
                for k in range(width):
                    pad[i, p, k] = (pad[i, p, k] + (theirs[i, p, k] & mask)) << shift


@njit(cache=True, nogil=True)
def choice_masks(pad0, pad1, selects, keep, out):
    """A 1-out-of-N sender's entries: out[i] = the XOR over OTs j of (pad0[i, j] at the
    positions of entries whose index has bit j clear, pad1[i, j] where it is set: selects[j]);
    `keep` masks the N entries' positions."""
    items, levels = pad0.shape
    for i in range(items):
        word = U64(0)
        for j in range(levels):
            word ^= (pad0[i, j] & ~selects[j]) | (pad1[i, j] & selects[j])
        out[i] = word & keep


@njit(cache=True, nogil=True)
def chosen_masks(pads, choices, width, index, entry):
    """A 1-out-of-N receiver's index (its choices, bit j from OT j) and its entry (`width`
    bits) there: the XOR of that entry of its pads."""
    items, levels = pads.shape
    keep = (U64(1) << U64(width)) - U64(1)
    for i in range(items):
        chosen = U64(0)
        for j in range(levels):
            chosen |= U64(choices[i * levels + j]) << U64(j)
        shift = chosen * U64(width)
        word = U64(0)
        for j in range(levels):
            word ^= pads[i, j] >> shift
        index[i] = chosen
        entry[i] = word & keep
