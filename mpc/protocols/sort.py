"""Oblivious stable sort of a table of shared columns by one or more shared keys: LSD radix
sort on shares (after Hamada et al. 2014 and Asharov et al. 2022), two key bits per pass.

Keys are converted once to XOR shares (A2B) and packed into as few 64-bit words as their
declared widths allow. Then, for each 2-bit digit from least to most significant:
1. the digit's one-hot code is made additive and each row's destination under a stable sort by
   the digit is computed on shares (three bit-times-value products);
2. the remaining key words and one packed column origin * 2^32 + destination are shuffled;
3. the destination half is opened and both servers move every row to its destination locally.
Finally the original row index, now in sorted order, is turned into a destination vector (one
more shuffle and opening), which moves the caller's columns in one shuffle and opening.

Why it leaks nothing: every opened value is uniform, either masked by fresh dealer randomness,
or masked by both servers' own randomness (the origin half of the packed column), or a
destination vector after a secret shuffle: a permutation of 0..n-1 composed with a uniformly
random permutation that neither server knows, hence uniformly random whatever the data. The
number and sizes of messages depend only on n, the number of columns and the key widths.

Cost for b key bits (b even): 3b + 14 rounds; each server sends about 24b + 250 bytes per row,
plus 16 per column moved; the dealer sends about 40b + 180 bytes per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

from twofold.mpc.errors import ProtocolMismatch
from twofold.mpc.party import Party
from twofold.mpc.protocols.arithmetic import reveal, truncate
from twofold.mpc.protocols.boolean import and_bits, arith_to_bool, bits_to_arith_times
from twofold.mpc.protocols.shuffle import Column, shuffle
from twofold.mpc.ring import U64
from twofold.mpc.shares import Additive, XorBits, XorWords

HALF = 32
LOW_HALF = U64((1 << HALF) - 1)
MAX_ROWS = 1 << 28
DIGIT_BITS = 2  # radix 4: half the passes of radix 2 for three products per pass instead of one


@dataclass(frozen=True)
class SortKey:
    """A shared key column. Values must fit in `bits` bits (two's complement when signed)."""

    column: Additive
    bits: int = 64
    signed: bool = True


def as_permutation(opened: np.ndarray, n: int) -> npt.NDArray[np.int64]:
    """An opened destination vector as indices, after checking it is a permutation."""
    indices = np.asarray(opened, U64)
    repeated = n and np.bincount(indices.astype(np.int64) % max(n, 1), minlength=n).max() != 1
    if indices.shape != (n,) or (n and (indices.max() >= n or repeated)):
        raise ProtocolMismatch("opened destinations are not a permutation: shares are corrupt")
    return indices.astype(np.int64)


def _move(columns: list[Column], destination: np.ndarray) -> list[Column]:
    moved = []
    for column in columns:
        out = np.empty_like(column)
        out[destination] = column
        moved.append(out)
    return moved


async def apply_permutation(party: Party, destination: Additive, columns: list[Column],
                            boolean: list[bool] | None = None) -> list[Column]:
    """Move row i of every column to row destination[i] (shared). 3 rounds."""
    boolean = (boolean or [False] * len(columns)) + [False]
    moving: list[npt.NDArray[np.uint64]] = [*columns, destination]
    *shuffled, shuffled_dest = await shuffle(party, moving, boolean)
    target = as_permutation(await reveal(party, Additive(shuffled_dest)), len(destination))
    return cast(list[Column], _move(shuffled, target))


async def _packed_key_words(party: Party, keys: list[SortKey]
                            ) -> tuple[list[XorWords], list[int]]:
    """XOR-shared key words, least significant first, and how many bits of each are used."""
    words: list[XorWords] = []
    widths: list[int] = []
    for key in reversed(keys):
        if not 1 <= key.bits <= 64:
            raise ValueError("sort key widths must be 1..64 bits")
        word = await arith_to_bool(party, Additive(np.asarray(key.column, U64)), key.bits)
        if key.signed and party.id == 0:
            word ^= U64(1 << (key.bits - 1))  # two's complement order -> unsigned order
        if widths and widths[-1] + key.bits <= 64:
            words[-1] = XorWords(words[-1] ^ (word << U64(widths[-1])))
            widths[-1] += key.bits
        else:
            words.append(word)
            widths.append(key.bits)
    return words, widths


def _one_hot(party: Party, a: Additive) -> list[np.ndarray]:
    """Additive indicators of each digit value, from additive shares of the digit's bits
    (rows: b0 and, for 2-bit digits, b1 and b0 & b1)."""
    one = party.public(np.ones(a.shape[1], U64))
    if len(a) == 1:
        return [one - a[0], a[0]]
    b0, b1, both = a
    return [one - b0 - b1 + both, b0 - both, b1 - both, both]


async def _digit_destination(party: Party, bits: XorBits) -> Additive:
    """Shares of each row's position after a stable sort by a 1- or 2-bit digit, given as XOR
    shared bit rows (least significant first). With indicators i_v of digit value v,
    dest = sum_v i_v * Y_v where Y_v = (rows with a smaller digit) + (rows with digit v above);
    since the indicators sum to one this takes one product per bit row of the one-hot code.
    3 rounds (2 for 1-bit digits), 8 bytes per product row."""
    if len(bits) == 2:
        both = await and_bits(party, XorBits(bits[0]), XorBits(bits[1]))
        bits = XorBits(np.vstack([bits, both[None, :]]))
    base = {}

    def operands(a: Additive) -> Additive:
        indicators = _one_hot(party, a)
        offset = np.zeros(1, U64)  # an array, not a scalar: shares wrap, silently
        ys = []
        for indicator in indicators:
            ys.append(offset + np.cumsum(indicator, dtype=U64) - indicator)
            offset = offset + indicator.sum(dtype=U64, keepdims=True)
        base["y0"] = ys[0]
        if len(ys) == 2:
            return Additive(np.stack([ys[1] - ys[0]]))
        return Additive(np.stack([ys[1] - ys[0], ys[2] - ys[0], ys[3] - ys[1] - ys[2] + ys[0]]))

    _, products = await bits_to_arith_times(party, bits, operands)
    return Additive(base["y0"] + products.sum(axis=0, dtype=U64))


async def sort_permutation(party: Party, keys: list[SortKey]) -> Additive:
    """Shares of each row's position in the stable order by keys (first key most significant).

    Each pass shuffles the remaining key words and one packed column origin * 2^32 + dest. To
    open only dest, each server adds its own random multiple of 2^32 first: the upper half
    opens as origin plus two masks, uniform to each server, and carries out of bit 63 vanish.
    """
    n = len(keys[0].column)
    if any(len(key.column) != n for key in keys):
        raise ValueError("sort keys must have the same length")
    if n > MAX_ROWS:
        raise ValueError(f"sort supports at most {MAX_ROWS} rows")
    positions = np.arange(n, dtype=U64)
    if n <= 1:
        return party.public(positions)
    words, widths = await _packed_key_words(party, keys)
    origin_high = party.public(positions << HALF)  # original row index, in the upper half
    for word_index, width in enumerate(widths):
        for bit in range(0, width, DIGIT_BITS):
            digit_bits = min(DIGIT_BITS, width - bit)
            digit = np.stack([((words[word_index] >> U64(bit + i)) & U64(1)).astype(np.uint8)
                              for i in range(digit_bits)])
            by_digit = await _digit_destination(party, XorBits(digit))
            first_kept = word_index + (1 if bit + digit_bits == width else 0)
            columns = [*words[first_kept:], origin_high + by_digit]  # XOR words, additive
            *carried, packed = await shuffle(party, columns, [True] * (len(columns) - 1) + [False])
            hidden_origin = party.rng.words(n) << HALF
            opened = await reveal(party, Additive(packed + hidden_origin))
            target = as_permutation(opened & LOW_HALF, n)
            *moved, packed = _move([*carried, packed], target)
            words[first_kept:] = [XorWords(word) for word in moved]
            origin_high = Additive(packed - party.public(positions))
    origin = await truncate(party, origin_high, HALF)  # exact: the low half is zero
    shuffled_origin, shuffled_position = await shuffle(
        party, [origin, party.public(positions)])
    rows = as_permutation(await reveal(party, shuffled_origin), n)
    destination = np.empty(n, U64)
    destination[rows] = shuffled_position
    return Additive(destination)


async def sort(party: Party, columns: list[Column], keys: list[SortKey]) -> list[Column]:
    """The columns, stably sorted by the keys (first key most significant)."""
    if not columns or len(columns[0]) <= 1:
        return [cast(Column, np.asarray(column, U64).copy()) for column in columns]
    return await apply_permutation(party, await sort_permutation(party, keys), columns)
