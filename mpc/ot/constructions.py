"""What OT makes, the constructions every correlation kind's `by_ot` builds its part from
(mpc.correlations): Constructions, one server's for one job.

Each construction runs on both servers with the same public parameters and returns this
server's arrays, in the layout of the dealer's part. Random values a server draws itself come
from its own Prg; a value whose bits are a server's COT choices is random too. Work is split
into chunks of at most CHUNK_WORDS words of pads, to bound memory.

Costs in COTs per element (both directions together) and correction bytes each way:
- beaver_triples: 2 x 64 COTs; 344 bytes per word of the other factor (Gilboa);
- matrix_triples (m x k)(k x n): 2 x 64 COTs per entry of the factor decomposed (the cheaper
  one); 344 bytes per entry and per word of the other factor's row or column;
- and_triples: 2 COTs per bit, no correction (random OT);
- dabits: 1 COT, 8 bytes; bit_row_triples (k rows): 2 COTs per column, 8 (2 k + 1) bytes
  (bit_triples: k = 1, 24 bytes); edabits: 64 COTs, 344 bytes;
- one_of_n: log2 N COTs, no correction (random OTs);
- truncation_pairs: 64 COTs, 8 bytes per bit at most, narrowed by its scale;
- row_mask: nothing (each server's share is its own); masked_products for a batch of B rows
  and d columns: 2 x 64 (B + d) COTs, 344 bytes per word of the other factor;
- permutation_masks: benes.py.
"""

from __future__ import annotations

import numpy as np

from twofold.mpc.correlations.one_of_n import low_bits
from twofold.mpc.ot import benes
from twofold.mpc.ot.extension import BYTES_PER_COT
from twofold.mpc.ot.kernels import choice_masks, chosen_masks
from twofold.mpc.ot.multiply import BITS_AT_ONCE, Multiplier, Side
from twofold.mpc.prg import Prg
from twofold.mpc.ring import U64

CHUNK_WORDS = 1 << 18  # pad words per products call (2 MiB: in cache, yet few messages)
WORD_BITS = np.arange(64)


def _pack_words(bits: np.ndarray) -> np.ndarray:
    """(count, 64) uint8 0/1 -> (count,) uint64, bit i of word j = bits[j, i]."""
    return np.packbits(bits, axis=1, bitorder="little").view(U64)[:, 0]


def _chunks(total: int, per_item: int, words: int = CHUNK_WORDS):
    step = max(1, words // max(per_item, 1))
    for start in range(0, total, step):
        yield start, min(step, total - start)


# ---- arithmetic products (Gilboa) ---------------------------------------------------------

async def _decomposed_products(mult: Multiplier, operand_words: np.ndarray):
    """For each item j: this server's random word y_j, whose bits are its choices, and shares
    of y_j * x_j(peer) + y_j(peer) * x_j, where x_j = operand_words[j] (w words) is this
    server's factor. Returns (y, shares (items, w))."""
    items, width = operand_words.shape
    side = Side(items, 64, width, WORD_BITS)
    send_cots, receive_cots = await mult.take(side.count, side.count)
    mine, got = await mult.products(send_cots, side, operand_words[:, None, :], None,
                                    receive_cots, side)
    cross = mine.sum(axis=1, dtype=U64) + got.sum(axis=1, dtype=U64)
    return _pack_words(receive_cots.choices.reshape(items, 64)), cross


async def _right_decomposed_matmul(mult: Multiplier, prg: Prg, m: int, k: int, n: int):
    """L (m x k) drawn, R (k x n) from choices, C = L @ R: entry R[j, l] times column L[:, j]
    for every (j, l), by Gilboa products of m words."""
    left = prg.words((m, k))
    right: np.ndarray = np.empty(k * n, U64)  # reshaped to (k, n) once filled
    cross = np.zeros((n, m), U64)
    for start, count in _chunks(k * n, 64 * m):
        entries = np.arange(start, start + count)
        right[entries], shares = await _decomposed_products(mult, left.T[entries // n])
        np.add.at(cross, entries % n, shares)
    right = right.reshape(k, n)
    return left, right, np.matmul(left, right) + cross.T


async def _summed_products(mult: Multiplier, operands: np.ndarray):
    """operands (groups, items, width): per group, this server's random word for each item
    (its bits are choices) and shares of the sum over items of the products (Gilboa) with
    the item's operand words, both ways."""
    groups, items, width = operands.shape
    flat = operands.reshape(groups * items, width)
    words, cross = np.empty(groups * items, U64), np.zeros((groups, width), U64)
    for start, count in _chunks(groups * items, 64 * width):
        part = slice(start, start + count)
        words[part], shares = await _decomposed_products(mult, flat[part])
        np.add.at(cross, np.arange(start, start + count) // items, shares)
    return words.reshape(groups, items), cross


# ---- bits ---------------------------------------------------------------------------------

def choice_selects(width: int) -> np.ndarray:
    """Word j: the bit positions of the entries (of `width` bits) whose index has bit j set,
    the positions an OT's second pad masks."""
    return np.array([sum(1 << p for p in range(64) if (p // width) >> j & 1) for j in range(6)],
                    U64)


CHOICE_SELECTS = {width: choice_selects(width) for width in (1, 2)}


async def _shared_bits(mult: Multiplier, party: int, prg: Prg, count: int, shifts: np.ndarray):
    """count x len(shifts) random bits, XOR-shared, and additive shares of bit i * 2^shift_i.

    Bit i of element e is made in direction (e if one bit per element, else i) % 2: its sender
    draws its share r_s, and the products give shares of (r_s ^ c) = r_s + c * (1 - 2 r_s)
    for the receiver's choice c. A correction scaled by 2^s needs only 64 - s bits."""
    per = len(shifts)
    if per == 1:  # alternate elements between the directions
        mine = np.arange(count) % 2 == party
        sending = Side(int(mine.sum()), 1, 1, shifts)
        receiving = Side(count - sending.items, 1, 1, shifts)
    else:  # alternate bits
        mine = np.arange(per) % 2 == party
        sending = Side(count, int(mine.sum()), 1, shifts[mine])
        receiving = Side(count, per - sending.positions, 1, shifts[~mine])
    send_cots, receive_cots = await mult.take(sending.count, receiving.count)
    drawn = prg.bits(sending.count).astype(U64).reshape(sending.shape)
    sent, got = await mult.products(send_cots, sending, U64(1) - U64(2) * drawn, drawn,
                                    receive_cots, receiving)
    choices = receive_cots.choices.reshape(receiving.shape[:2])
    bits, scaled = np.empty((count, per), np.uint8), np.empty((count, per), U64)
    if per == 1:
        bits[mine, 0], bits[~mine, 0] = drawn[:, 0, 0], choices[:, 0]
        scaled[mine, 0], scaled[~mine, 0] = sent[:, 0, 0], got[:, 0, 0]
    else:
        bits[:, mine], bits[:, ~mine] = drawn[:, :, 0], choices
        scaled[:, mine], scaled[:, ~mine] = sent[:, :, 0], got[:, :, 0]
    return bits, scaled


class Constructions:
    """One server's OT constructions for one job: its multiplier (COTs, pad hash and the
    "ot-correlate" channel), its own Prg, and what a job keeps between requests (the latest
    row mask's share, the helper's latest switching network)."""

    def __init__(self, mult: Multiplier, party: int, prg: Prg):
        self.mult = mult
        self.party = party
        self.prg = prg
        self._layouts = benes.Layouts()  # the helper's networks, for this job only
        self._row_mask: np.ndarray | None = None  # this server's share of the latest one

    # ---- arithmetic products (Gilboa) -----------------------------------------------------

    async def beaver_triples(self, shape):
        """a, b, c = a * b: a's bits are choices, b is drawn."""
        n = int(np.prod(shape, dtype=np.int64))
        a, b, c = np.empty(n, U64), np.empty(n, U64), np.empty(n, U64)
        for start, count in _chunks(n, 64):
            part = slice(start, start + count)
            b[part] = self.prg.words(count)
            a[part], cross = await _decomposed_products(self.mult, b[part, None])
            c[part] = a[part] * b[part] + cross[:, 0]
        return a.reshape(shape), b.reshape(shape), c.reshape(shape)

    async def matrix_triples(self, m: int, k: int, n: int):
        """A (m x k), B (k x n), C = A @ B, decomposing whichever factor costs fewer bytes."""
        per_cot = 64 * BYTES_PER_COT
        if k * n * (per_cot + 43 * m) <= m * k * (per_cot + 43 * n):
            return await _right_decomposed_matmul(self.mult, self.prg, m, k, n)
        right_t, left_t, product_t = await _right_decomposed_matmul(self.mult, self.prg, n, k, m)
        return left_t.T.copy(), right_t.T.copy(), product_t.T.copy()

    def row_mask(self, rows: int, columns: int) -> np.ndarray:
        """This server's share of a new row mask, its own (nothing to exchange); the masked
        products after it are of this mask."""
        self._row_mask = self.prg.words((rows, columns))
        return self._row_mask

    async def masked_products(self, row_groups: list[list[int]], columns: int):
        """For shared rows A_b (batch x columns) of the latest row mask, in each of the groups
        of rows: b and c = A_b b, b' and c' = A_b^T b'. The cross terms are Gilboa products:
        b's entries decomposed against A_b's columns, then b''s against its rows. Returns the
        four as arrays with one row per group."""
        if self._row_mask is None or self._row_mask.shape[1] != columns:
            raise ValueError("masked products need a row mask made before them")
        mask_rows = self._row_mask[np.array(row_groups)]  # groups x batch x columns
        forward, cross_forward = await _summed_products(self.mult, mask_rows.transpose(0, 2, 1))
        backward, cross_backward = await _summed_products(self.mult, mask_rows)
        return (forward, backward,
                np.matmul(mask_rows, forward[:, :, None])[:, :, 0] + cross_forward,
                np.matmul(mask_rows.transpose(0, 2, 1), backward[:, :, None])[:, :, 0]
                + cross_backward)

    # ---- bits -----------------------------------------------------------------------------

    async def and_triples(self, shape):
        """a, b, c packed 64 to a word with c = a & b: a's bits from this server's random OTs
        as sender, b's from its choices, and a(peer) * b, a * b(peer) from the random OTs."""
        words = int(np.prod(shape, dtype=np.int64))
        out = np.empty((3, words), U64)
        for start, count in _chunks(words, 64):
            x, s, c, r = await self.mult.random_bits(64 * count)
            triple = [x, c, (x & c) ^ s ^ r]
            for row, bits in enumerate(triple):
                out[row, start:start + count] = _pack_words(bits.reshape(count, 64))
        return tuple(row.reshape(shape) for row in out)

    async def one_of_n(self, count: int, entries: int, sender: int, width: int = 1):
        """Random 1-out-of-N OTs on entries of `width` bits from log2 N random OTs each (Naor
        and Pinkas): the sender's entry k is the XOR over j of entry k of OT j's pad for bit j
        of k; the receiver, whose choices c spell its index, holds the pads of c and so learns
        entry c only (any other k differs from c in some j, where entry k of the pad it lacks
        is used for k alone). The sender's (entries,), the receiver's (index, entry)."""
        mult, levels = self.mult, entries.bit_length() - 1
        offered = np.empty(count, U64)  # the sender's entries, one word per OT
        index, entry = np.empty(count, np.uint8), np.empty(count, np.uint8)  # the receiver's
        for start, size in _chunks(count, levels, BITS_AT_ONCE):  # pads hashed while in cache
            part = slice(start, start + size)
            cots = size * levels
            send_cots, receive_cots = await mult.take(cots if self.party == sender else 0,
                                                      0 if self.party == sender else cots)
            if self.party == sender:
                pad0, pad1 = (pads.reshape(size, levels)
                              for pads in mult.sender_pads(send_cots, 1))
                choice_masks(pad0, pad1, CHOICE_SELECTS[width], low_bits(entries * width),
                             offered[part])
            else:
                pads = mult.receiver_pads(receive_cots, 1).reshape(size, levels)
                chosen_masks(pads, receive_cots.choices, width, index[part], entry[part])
        return (offered,) if self.party == sender else (index, entry)

    async def dabits(self, count: int):
        """Random bits as XOR shares (uint8) and additive shares (uint64)."""
        bits, arith = await _shared_bits(self.mult, self.party, self.prg, count,
                                         np.zeros(1, np.int64))
        return bits[:, 0], arith[:, 0]

    async def edabits(self, shape):
        """Random words as XOR shares and additive shares."""
        n = int(np.prod(shape, dtype=np.int64))
        words, arith = np.empty(n, U64), np.empty(n, U64)
        for start, count in _chunks(n, 64):
            bits, scaled = await _shared_bits(self.mult, self.party, self.prg, count, WORD_BITS)
            words[start:start + count] = _pack_words(bits)
            arith[start:start + count] = scaled.sum(axis=1, dtype=U64)
        return words.reshape(shape), arith.reshape(shape)

    async def truncation_pairs(self, shape, frac_bits: int):
        """Shares of a random r, of msb(r) and of (r mod 2^63) >> f, from its 64 shared bits:
        bit i is made scaled by 2^i below f, 2^(i - f) from f to 62 (then scaled up for r) and
        1 for bit 63."""
        f = frac_bits
        shifts = np.concatenate([np.arange(f), np.arange(63 - f), [0]])
        n = int(np.prod(shape, dtype=np.int64))
        out = np.empty((3, n), U64)
        for start, count in _chunks(n, 64):
            _, scaled = await _shared_bits(self.mult, self.party, self.prg, count, shifts)
            low = scaled[:, f:63].sum(axis=1, dtype=U64)
            msb = scaled[:, 63]
            r = scaled[:, :f].sum(axis=1, dtype=U64) + (low << U64(f)) + (msb << U64(63))
            out[:, start:start + count] = r, msb, low
        return tuple(row.reshape(shape) for row in out)

    async def bit_row_triples(self, rows: int, n: int):
        """Random bits r (XOR shares: this server's choices), random beta (rows x n), and
        additive shares of r and of gamma = r * beta. In direction 0 server 0 offers
        (r0 ^ c) * (1, beta0 column); in direction 1 server 1 offers (r1 ^ c) * its beta1
        column: two COTs per column, whatever the rows."""
        mult, party = self.mult, self.party
        out_bits, beta = np.empty(n, np.uint8), np.empty((n, rows), U64)
        r_arith, gamma = np.empty(n, U64), np.empty((n, rows), U64)
        widths = (rows + 1, rows) if party == 0 else (rows, rows + 1)
        for start, size in _chunks(n, 2 * rows + 1):
            part = slice(start, start + size)
            send_cots, receive_cots = await mult.take(size, size)
            bits = receive_cots.choices.astype(U64)[:, None, None]
            beta[part] = self.prg.words((size, rows))
            factors = np.concatenate([np.ones((size, 1), U64), beta[part]], axis=1)
            factors = factors[:, None, rows + 1 - widths[0]:]
            mine, got = await mult.products(
                send_cots, Side(size, 1, widths[0]), (U64(1) - U64(2) * bits) * factors,
                bits * factors, receive_cots, Side(size, 1, widths[1]))
            mine, got = mine[:, 0], got[:, 0]
            out_bits[part] = receive_cots.choices
            if party == 0:  # mine: (r, r * beta0); got: r * beta1
                r_arith[part], gamma[part] = mine[:, 0], mine[:, 1:] + got
            else:  # got: (r, r * beta0); mine: r * beta1
                r_arith[part], gamma[part] = got[:, 0], got[:, 1:] + mine
        return out_bits, beta.T.copy(), r_arith, gamma.T.copy()

    # ---- permutations ---------------------------------------------------------------------

    async def permutation_masks(self, n: int, columns: str, permuter: int):
        """(pi, delta) as permuter, (a, b) as helper, by an oblivious switching network."""
        return await benes.permutation_masks(self.mult, self.party, self.prg, n, columns,
                                             permuter, self._layouts)
