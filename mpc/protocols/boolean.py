"""Boolean (XOR) shares and the conversions and comparisons built on them.

Two layouts of XOR-shared bits (mpc.shares):
- words (XorWords): one uint64 per value, bit j of the value in bit j of the word (A2B output,
  sort keys);
- planes (XorPlanes): for n values, a (bits, ceil(n/64)) uint64 array whose row j packs bit j
  of all n values, 64 to a word. Comparison trees work plane by plane, so each level of the
  tree halves the number of planes, and the bytes sent shrink with it.
Single bits (XorBits: comparison results) are uint8 0/1 arrays, packed 8 to a byte on the wire.
An AND works on words and planes alike (Packed), and gives the layout it was given.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast

import numpy as np
import numpy.typing as npt

from twofold.mpc.correlation_source import BitTriple
from twofold.mpc.correlations.and_monomials import monomial_mask, product_subsets, submasks
from twofold.mpc.party import Party
from twofold.mpc.protocols.arithmetic import mul
from twofold.mpc.protocols.choices import (
    CARRY,
    CARRY_LEAF,
    EQUAL,
    EQUAL_LEAF,
    block_leaves,
    through_blocks,
)
from twofold.mpc.ring import U64
from twofold.mpc.shares import Additive, XorBits, XorPlanes, XorWords

ALL_ONES = U64(0xFFFF_FFFF_FFFF_FFFF)
Packed = TypeVar("Packed", XorWords, XorPlanes)  # XOR-shared bits packed in uint64 words


async def and_many(party: Party, pairs: list[tuple[Packed, Packed]]) -> list[Packed]:
    """x & y for every (x, y) pair of XOR-shared word arrays, in one round.

    1 round; each server sends 2 words per word ANDed (2 bits per bit).
    """
    shapes = [np.shape(x) for x, _ in pairs]
    xs = np.concatenate([np.ravel(x) for x, _ in pairs]) if pairs else np.zeros(0, U64)
    ys = np.concatenate([np.ravel(y) for _, y in pairs]) if pairs else np.zeros(0, U64)
    a, b, c = await party.corr.and_triples(xs.shape)
    d_mine, e_mine = xs ^ a, ys ^ b
    d_other, e_other = await party.link.exchange(d_mine, e_mine)
    d, e = d_mine ^ d_other, e_mine ^ e_other
    z = c ^ (d & b) ^ (e & a)
    if party.id == 0:
        z ^= d & e
    out, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape, dtype=np.int64))
        out.append(z[start : start + size].reshape(shape))
        start += size
    return cast(list[Packed], out)


async def and_words(party: Party, x: Packed, y: Packed) -> Packed:
    (z,) = await and_many(party, [(x, y)])
    return z


@dataclass(frozen=True)
class _MonomialPlan:
    """Index tables that evaluate and_monomials' terms with a few whole-array operations.
    `public` lists every set of variables inside a monomial (bit masks, by size, the empty set
    first); set j > 0 is set parents[j - 1] plus variable adds[j - 1], so each size is one AND.
    Term t is public[term_public[t]] & share[term_share[t]], where share stacks the empty set
    (all ones on server 0), the masks and the mask products; monomial m XORs terms
    starts[m] up to the next start."""

    layers: list[tuple[int, int]]  # (first, end) positions in public of each size >= 1
    parents: np.ndarray
    adds: np.ndarray
    term_public: np.ndarray
    term_share: np.ndarray
    starts: np.ndarray


@functools.cache
def _monomial_plan(monomials: tuple[tuple[int, ...], ...], variables: int) -> _MonomialPlan:
    masks = [monomial_mask(monomial) for monomial in monomials]
    products = product_subsets(monomials)
    share_of = {0: 0, **{1 << i: 1 + i for i in range(variables)},
                **{subset: 1 + variables + row for row, subset in enumerate(products)}}
    public = sorted({subset for mask in masks for subset in submasks(mask)},
                    key=lambda subset: (subset.bit_count(), subset))
    position = {subset: j for j, subset in enumerate(public)}
    sizes = [subset.bit_count() for subset in public]
    layers = [(bisect.bisect_left(sizes, size), bisect.bisect_right(sizes, size))
              for size in range(1, sizes[-1] + 1)]
    highs = [1 << (subset.bit_length() - 1) for subset in public[1:]]
    parents = [position[subset ^ high] for subset, high in zip(public[1:], highs, strict=True)]
    adds = [high.bit_length() - 1 for high in highs]
    terms = [[(position[mask ^ subset], share_of[subset]) for subset in submasks(mask)]
             for mask in masks]
    starts = np.cumsum([0] + [len(of_monomial) for of_monomial in terms[:-1]])
    term_public, term_share = zip(*(term for of_monomial in terms for term in of_monomial),
                                  strict=True)
    indices = [np.asarray(values, np.intp)
               for values in (parents, adds, term_public, term_share, starts)]
    return _MonomialPlan(layers, *indices)


async def and_monomials(party: Party, variables: Packed,
                        monomials: list[list[int]]) -> list[Packed]:
    """For XOR-shared words variables[i] (all of one shape), the AND of variables[i] over i in
    each monomial (2 to 4 inputs), in one round: d_i = x_i ^ a_i is opened for the masks a_i of
    an and_monomials correlation, and a monomial M is the XOR over S inside M of
    (AND of d_i, i in M - S) & a_S, where a_S is shared (a_{} = 1: server 0's term only).

    1 round; each server sends one word per variable (a binary AND sends two)."""
    masks, products = await party.corr.and_monomials(variables.shape[1:], monomials)
    plan = _monomial_plan(tuple(map(tuple, monomials)), len(variables))
    mine = variables ^ masks
    (other,) = await party.link.exchange(mine)
    opened: npt.NDArray[np.uint64] = mine ^ other
    public = np.empty((1 + len(plan.parents), *opened.shape[1:]), U64)
    public[0] = ALL_ONES
    for first, end in plan.layers:
        layer = slice(first - 1, end - 1)  # sets first .. end - 1: parents and added variables
        np.bitwise_and(public[plan.parents[layer]], opened[plan.adds[layer]],
                       out=public[first:end])
    empty = np.full((1, *opened.shape[1:]), ALL_ONES if party.id == 0 else 0, U64)
    shares = np.concatenate([empty, masks, products])
    terms = public[plan.term_public] & shares[plan.term_share]
    return cast(list[Packed], list(np.bitwise_xor.reduceat(terms, plan.starts, axis=0)))


# ---- layouts -----------------------------------------------------------------------------

_TRANSPOSE_STEPS = [(32, 0x00000000FFFFFFFF), (16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF),
                    (4, 0x0F0F0F0F0F0F0F0F), (2, 0x3333333333333333), (1, 0x5555555555555555)]


def _transpose_blocks(blocks: np.ndarray) -> None:
    """Transposes every 64 x 64 bit block (a row of 64 words) in place, by six swaps of ever
    smaller sub-blocks (Hacker's Delight 7-3), every block at once."""
    width = len(blocks)
    for step, mask in _TRANSPOSE_STEPS:
        pairs = blocks.reshape(width, 32 // step, 2, step)
        low, high = pairs[:, :, 0, :], pairs[:, :, 1, :]
        swapped = ((low >> U64(step)) ^ high) & U64(mask)
        high ^= swapped
        low ^= swapped << U64(step)


def to_planes(words: XorWords, bits: int = 64) -> XorPlanes:
    """(n,) uint64 words -> (bits, ceil(n/64)) planes of their low `bits` bits.

    Each block of 64 words is a 64 x 64 bit matrix whose transpose holds the block's planes:
    six passes over the words instead of unpacking 64 bytes per word."""
    n = len(words)
    width = (n + 63) // 64
    blocks: npt.NDArray[np.uint64] = np.zeros(width * 64, U64)
    blocks[:n] = words
    blocks = blocks.reshape(width, 64)
    _transpose_blocks(blocks)
    return XorPlanes(np.ascontiguousarray(blocks.T[:bits]))


def from_planes(planes: XorPlanes, n: int) -> XorWords:
    """(bits, ceil(n/64)) planes -> (n,) words whose bits above `bits` are zero: to_planes'
    inverse (a bit transpose undoes itself)."""
    blocks = np.zeros((planes.shape[1], 64), U64)
    blocks[:, :len(planes)] = planes.T
    _transpose_blocks(blocks)
    return XorWords(blocks.reshape(-1)[:n])


def plane_to_bits(plane: npt.NDArray[np.uint64], n: int) -> XorBits:
    """One packed plane (a row of planes) -> (n,) uint8 0/1."""
    return XorBits(np.unpackbits(np.ascontiguousarray(plane).view(np.uint8), count=n,
                                 bitorder="little"))


def pack_bits(bits: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    return np.packbits(bits, bitorder="little")


def _bit_planes(bits: XorBits) -> XorPlanes:
    """(rows, n) uint8 0/1 -> (rows, ceil(n/64)) planes."""
    rows, n = bits.shape
    packed = np.zeros((rows, 8 * ((n + 63) // 64)), np.uint8)
    packed[:, :(n + 7) // 8] = np.packbits(bits, axis=1, bitorder="little")
    return XorPlanes(packed.view(U64))


# ---- conversions -------------------------------------------------------------------------

async def bits_to_arith(party: Party, bits: XorBits) -> Additive:
    """XOR-shared 0/1 bits -> additive shares of the same bits (daBits).

    1 round, n/8 bytes; the dealer sends 8 bytes per bit to server 1.
    """
    shape, flat = np.shape(bits), np.ravel(bits)
    r_bits, r_arith = await party.corr.dabits(flat.size)
    mine = pack_bits(flat ^ r_bits)
    (other,) = await party.link.exchange(mine)
    opened = np.unpackbits(mine ^ other, count=flat.size, bitorder="little").astype(U64)
    result = (U64(1) - U64(2) * opened) * r_arith  # c xor r = c + (1 - 2c) r
    if party.id == 0:
        result += opened
    return Additive(result.reshape(shape))


def _bit_product(opened, operand, r_arith, masked, gamma):
    """Shares of b * operand from the opened c = b ^ r and e = operand - beta, with bit triples
    (r, beta, gamma = r * beta): b = c + (1 - 2c) r, so b * operand = c * operand
    + (1 - 2c)(r * e + gamma)."""
    return opened * operand + (U64(1) - U64(2) * opened) * (r_arith * masked + gamma)


async def bits_to_arith_times(party: Party, bits: XorBits,
                              operands_of: Callable[[Additive], Additive]
                              ) -> tuple[Additive, Additive]:
    """Additive shares of XOR-shared 0/1 bits b (k rows of n) and of b * operands_of(b), where
    operands_of maps the additive shares of b to shares of k rows of values (local work only).

    Open c = b ^ r, which gives b = c + (1 - 2c) r; then open e = operand - beta.
    2 rounds, 8 + 1/8 bytes per bit.
    """
    shape, flat = np.shape(bits), np.ravel(bits)
    r_bits, beta, r_arith, gamma = await party.corr.bit_triples(flat.size)
    mine = pack_bits(flat ^ r_bits)
    (other,) = await party.link.exchange(mine)
    opened = np.unpackbits(mine ^ other, count=flat.size, bitorder="little").astype(U64)
    b = (U64(1) - U64(2) * opened) * r_arith
    if party.id == 0:
        b += opened
    operand = np.ravel(operands_of(Additive(b.reshape(shape))))
    e_mine = operand - beta
    (e_other,) = await party.link.exchange(e_mine)
    product = _bit_product(opened, operand, r_arith, e_mine + e_other, gamma)
    return Additive(b.reshape(shape)), Additive(product.reshape(shape))


async def _opened_bit_times(party: Party, bits: XorBits, values: Additive,
                            triples: BitTriple) -> Additive:
    """Shares of b * v for XOR-shared bits b (n) and values v (n, or rows of n) with bit
    triples of v's shape: c = b ^ r and e = v - beta opened together (v does not depend on
    b), 1 round."""
    r_bits, beta, r_arith, gamma = triples
    mine, e_mine = pack_bits(bits ^ r_bits), values - beta
    other, e_other = await party.link.exchange(mine, e_mine)
    opened = np.unpackbits(mine ^ other, count=bits.size, bitorder="little").astype(U64)
    return Additive(_bit_product(opened, values, r_arith, e_mine + e_other, gamma))


async def bits_times(party: Party, bits: XorBits, values: Additive) -> Additive:
    """Additive shares of b * v for XOR-shared 0/1 bits b and additive values v of the same
    shape. 1 round, 8 + 1/8 bytes per product."""
    flat = XorBits(np.ravel(bits))
    product = await _opened_bit_times(party, flat, Additive(np.ravel(values)),
                                      await party.corr.bit_triples(flat.size))
    return Additive(product.reshape(np.shape(bits)))


async def flag_rows(party: Party, flags: Additive, ys: Additive) -> Additive:
    """flags (n): additive shares of 0/1 values; ys (k x n): shares of each flag times each
    row. The lowest bits of a 0/1 value's additive shares are XOR shares of it (no carry
    reaches bit 0), so the flag opens as one bit masked by a random one, as in bits_times,
    with k values per bit (bit row triples). 1 round, 8 k + 1/8 bytes per column; from OT
    2 COTs per column (a Beaver triple per column would take 128)."""
    values = Additive(np.asarray(ys, U64))
    rows, n = values.shape
    if rows == 0:
        return values.copy()
    bits = XorBits((np.asarray(flags, U64) & U64(1)).astype(np.uint8))
    return await _opened_bit_times(party, bits, values,
                                   await party.corr.bit_row_triples(rows, n))


async def and_bits(party: Party, x: XorBits, y: XorBits) -> XorBits:
    """x & y for XOR-shared 0/1 uint8 bit vectors, packed 64 to a word. 1 round, n/4 bytes."""
    planes = _bit_planes(XorBits(np.stack([x, y])))
    product = await and_words(party, XorPlanes(planes[0]), XorPlanes(planes[1]))
    return XorBits(np.unpackbits(product.view(np.uint8), count=len(x), bitorder="little"))


# Values from which a carry ripples bit by bit (one AND per bit, a round per bit) instead of
# going up a log-depth tree, where the ANDs saved outweigh the rounds added (the crossovers
# are measured with bench mpc, docs/mpc.md): with a dealer, adders from 2^15 values
# (Kogge-Stone ANDs 12 words per value) and comparisons from 2^17 (their tree about 3 bits
# per bit); with OT, where an ANDed bit costs two COTs, both from 2^11.
RIPPLE_ADDERS_FROM = 1 << 15
RIPPLE_COMPARISONS_FROM = 1 << 17
RIPPLE_FROM_OT = 1 << 11


def _ripples(party: Party, n: int, with_dealer_from: int) -> bool:
    return n >= (with_dealer_from if party.corr.cheap_ands else RIPPLE_FROM_OT)


def _by_choices(party: Party, n: int) -> bool:
    """Comparisons by 1-out-of-N OTs (mpc.protocols.choices) where ANDs cost COTs."""
    return not party.corr.cheap_ands and n >= RIPPLE_FROM_OT


async def add_words(party: Party, u: XorWords, v: XorWords, bits: int = 64) -> XorWords:
    """XOR shares of the low `bits` bits of u + v (mod 2^bits), for XOR-shared words u, v:
    ripple-carry for many values (_ripples), Kogge-Stone for few."""
    if _ripples(party, np.size(u), RIPPLE_ADDERS_FROM):
        return await _ripple_add(party, u, v, bits)
    return await _kogge_stone_add(party, u, v, bits)


async def _ripple_carries(party: Party, u_planes: XorPlanes, half_sums: XorPlanes
                          ) -> XorPlanes:
    """The carries into each bit of u + v (planes, bit 0 first), from XOR-shared planes of u and
    of u ^ v: c_{i+1} = maj(u_i, v_i, c_i) = u_i ^ ((u_i ^ v_i) & (u_i ^ c_i)), one AND and
    one round per bit after the first."""
    carries = np.zeros_like(half_sums)
    for bit in range(len(half_sums) - 1):
        carries[bit + 1] = u_planes[bit] ^ await and_words(
            party, XorPlanes(half_sums[bit]), XorPlanes(u_planes[bit] ^ carries[bit]))
    return carries


async def _ripple_add(party: Party, u: XorWords, v: XorWords, bits: int) -> XorWords:
    """Bit by bit on planes (_ripple_carries): bits - 1 rounds; at 64 bits, 63 bits ANDed per
    value (a twelfth of Kogge-Stone's), 16 bytes per value."""
    u_planes = to_planes(XorWords(np.ravel(u)), bits)
    v_planes = to_planes(XorWords(np.ravel(v)), bits)
    half_sums = XorPlanes(u_planes ^ v_planes)
    total = XorPlanes(half_sums ^ await _ripple_carries(party, u_planes, half_sums))
    return XorWords(from_planes(total, np.size(u)).reshape(np.shape(u)))


async def _kogge_stone_add(party: Party, u: XorWords, v: XorWords, bits: int) -> XorWords:
    """Kogge-Stone carry prefix: 1 + ceil(log2 bits) rounds; at 64 bits, 12 ANDed words,
    192 bytes per value."""
    generate = await and_words(party, u, v)
    propagate = u ^ v
    carry_g, carry_p = generate, XorWords(propagate)
    shift = 1
    while shift < bits:
        last = shift * 2 >= bits
        pairs = [(carry_p, XorWords(carry_g << U64(shift)))]
        if not last:
            pairs.append((carry_p, XorWords(carry_p << U64(shift))))
        results = await and_many(party, pairs)
        carry_g = XorWords(carry_g ^ results[0])
        if not last:
            carry_p = results[1]
        shift *= 2
    total = propagate ^ (carry_g << U64(1))
    return XorWords(total if bits == 64 else total & U64((1 << bits) - 1))


async def arith_to_bool(party: Party, x: Additive, bits: int = 64) -> XorWords:
    """A2B: additive shares -> XOR shares of the low `bits` bits. Server p's own share is a
    XOR sharing held by p alone; a shared adder sums the two. Rounds and bytes of add_words."""
    own = XorWords(np.asarray(x, U64))
    zero = XorWords(np.zeros_like(own))
    mine, theirs = (own, zero) if party.id == 0 else (zero, own)
    return await add_words(party, mine, theirs, bits)


async def bool_to_arith(party: Party, words: XorWords) -> Additive:
    """B2A of 64-bit words with edaBits: open y = w + r in a shared adder, then w = y - r.

    add_words plus 1 round; 200 bytes per value; the dealer sends 8 bytes per value.
    """
    r_bool, r_arith = await party.corr.edabits(words.shape)
    y_bool = await add_words(party, words, r_bool)
    (other,) = await party.link.exchange(y_bool)
    opened = y_bool ^ other
    return Additive((opened - r_arith) if party.id == 0 else (U64(0) - r_arith))


# ---- comparisons -------------------------------------------------------------------------

def _owner_split_planes(party: Party, x: Additive
                        ) -> tuple[XorPlanes, tuple[XorPlanes, XorPlanes]]:
    """Planes of this server's own share, as the two XOR sharings (z0, 0) and (0, z1)."""
    planes = to_planes(XorWords(np.ravel(x)))
    zero = XorPlanes(np.zeros_like(planes))
    return planes, ((planes, zero) if party.id == 0 else (zero, planes))


FAN_IN_4_WORDS = 16  # plane words (1,024 values) up to which AND trees take fan-in 4


def _ones(party: Party, shape) -> np.ndarray:
    """XOR shares of all-one words."""
    return np.full(shape, ALL_ONES if party.id == 0 else 0, U64)


def _groups(party: Party, planes: XorPlanes, size: int, fill_one: bool) -> XorPlanes:
    """(count, w) planes -> (size, ceil(count / size), w): plane j of group i at [j, i], the
    last group completed with XOR-shared ones (fill_one) or zeros."""
    short = -len(planes) % size
    if short:
        filler = _ones(party, (short, planes.shape[1])) if fill_one else np.zeros(
            (short, planes.shape[1]), U64)
        planes = XorPlanes(np.vstack([planes, filler]))
    return XorPlanes(planes.reshape(len(planes) // size, size, planes.shape[1]).transpose(1, 0, 2))


# A fan-in-4 carry node, groups (g_j, p_j) low to high: G = g3 ^ p3 g2 ^ p3 p2 g1 ^ p3 p2 p1 g0
# and P = p3 p2 p1 p0 (XOR for OR: a group cannot both generate and propagate). Its variables
# are g0, g1, g2, p1, p2, p3, p0 in this order.
_CARRY4 = [[5, 2], [5, 4, 1], [5, 4, 3, 0]]
_PROPAGATE4 = [5, 4, 3, 6]


def _fan_in(party: Party, words: int) -> int:
    """Fan-in 4 where ANDs are cheap (a dealer) and rounds dominate: it saves half the
    rounds of a tree but makes about 4 times the mask products (dealer bytes and local work),
    so at 4,096 values and more a binary tree was as fast or faster (bench mpc, lt and eq)."""
    return 4 if party.corr.cheap_ands and words <= FAN_IN_4_WORDS else 2


async def _carry_out(party: Party, generate: XorPlanes, propagate: XorPlanes
                     ) -> npt.NDArray[np.uint64]:
    """The carry out of the top of (count, w) planes of generate and propagate bits, low plane
    first: a tree of fan-in 4 (and_monomials) or 2 (_fan_in). ceil(log_4 count) or
    ceil(log_2 count) rounds."""
    fan_in = _fan_in(party, generate.shape[1])
    while len(generate) > 1:
        last = len(generate) <= fan_in
        g, p = _groups(party, generate, fan_in, False), _groups(party, propagate, fan_in, True)
        if fan_in == 4:
            variables = np.stack([g[0], g[1], g[2], p[1], p[2], p[3]] + ([] if last else [p[0]]))
            made = await and_monomials(party, XorPlanes(variables),
                                       _CARRY4 + ([] if last else [_PROPAGATE4]))
            generate = XorPlanes(g[3] ^ made[0] ^ made[1] ^ made[2])
            if not last:
                propagate = made[3]
        elif last:
            generate = XorPlanes(g[1] ^ await and_words(party, XorPlanes(p[1]), XorPlanes(g[0])))
        else:
            carried, propagate = await and_many(party, [(XorPlanes(p[1]), XorPlanes(g[0])),
                                                        (XorPlanes(p[1]), XorPlanes(p[0]))])
            generate = XorPlanes(g[1] ^ carried)
    return generate[0]


async def msb_bits(party: Party, x: Additive) -> XorBits:
    """XOR-shared msb of additively shared x, as (n,) uint8 bits.

    msb(x0 + x1) = x0[63] ^ x1[63] ^ carry into bit 63. With a dealer, the carry comes from a
    tree over the 63 low bit planes: up to 1,024 values fan-in-4 ANDs, 4 rounds, 34 bytes per
    value sent, 65 from the dealer; for many values (_ripples) it ripples: 63 rounds, 63 bits
    ANDed per value, 16 bytes; otherwise 7 rounds, about 190 bits ANDed, 48 bytes. From OT,
    through 1-out-of-N OTs (mpc.protocols.choices): for few values every block's generate and
    propagate bits, then a tree over the 13 blocks (6 rounds, 117 COTs); for many
    (_by_choices) block by block (14 messages, 75 COTs, 107 bytes per value)."""
    n = x.size
    if not party.corr.cheap_ands:
        own = np.ravel(np.asarray(x, U64))
        if _by_choices(party, n):
            carry = await through_blocks(party, own, 63, CARRY)
        else:  # each block's generate and propagate bits, then a tree over the blocks
            leaves = await block_leaves(party, own, 63, CARRY_LEAF)
            generates, propagates = leaves & np.uint8(1), leaves >> np.uint8(1)
            carry = plane_to_bits(await _carry_out(party, _bit_planes(XorBits(generates)),
                                                   _bit_planes(XorBits(propagates))), n)
        return XorBits(((own >> U64(63)).astype(np.uint8) ^ carry).reshape(np.shape(x)))
    planes, (u, v) = _owner_split_planes(party, x)
    if _ripples(party, n, RIPPLE_COMPARISONS_FROM):  # the carry into bit 63
        carry_planes = await _ripple_carries(party, u, planes)
        return XorBits(plane_to_bits(planes[63] ^ carry_planes[63], n).reshape(np.shape(x)))
    generate = await and_words(party, XorPlanes(u[:63]), XorPlanes(v[:63]))
    top = planes[63] ^ await _carry_out(party, generate, XorPlanes(planes[:63]))
    return XorBits(plane_to_bits(top, n).reshape(np.shape(x)))


async def less_than_bits(party: Party, x: Additive, y: Additive) -> XorBits:
    """XOR-shared [x < y] for signed x, y with |x - y| < 2^63. Rounds and bytes of msb_bits
    (4, 7 or 63 rounds)."""
    return await msb_bits(party, Additive(np.asarray(x, U64) - np.asarray(y, U64)))


async def less_than(party: Party, x: Additive, y: Additive) -> Additive:
    """Additive 0/1 shares of [x < y]. msb_bits and 1 round (5, 8 or 64 rounds)."""
    return await bits_to_arith(party, await less_than_bits(party, x, y))


async def greater_than(party: Party, x: Additive, y: Additive) -> Additive:
    return await less_than(party, y, x)


async def equal_bits(party: Party, x: Additive, y: Additive) -> XorBits:
    """XOR-shared [x == y] for any x, y in Z_2^64.

    x == y iff z0 == -z1 for z = x - y. With a dealer, iff every bit of ~z0 ^ (-z1) is set:
    an AND tree over 64 planes, 6 rounds, 63 bits ANDed per value, 16 bytes per value; up to
    1,024 values fan-in-4 ANDs: 3 rounds, 11 bytes per value, 29 from the dealer. From OT,
    through 1-out-of-N OTs (mpc.protocols.choices): for few values whether each block of 6
    bits is equal, then an AND tree over the 11 blocks (6 rounds, 88 COTs); for many
    (_by_choices) block by block (14 messages, 76 COTs, 108 bytes per value).
    """
    difference = np.asarray(x, U64) - np.asarray(y, U64)
    diff = np.ravel(difference)
    if not party.corr.cheap_ands:
        own = diff if party.id == 0 else U64(0) - diff
        if _by_choices(party, diff.size):
            return XorBits(
                (await through_blocks(party, own, 64, EQUAL)).reshape(difference.shape))
        equal_blocks = await block_leaves(party, own, 64, EQUAL_LEAF)
        planes = _bit_planes(XorBits(equal_blocks))
    else:  # this server's own share of -z, as a XOR sharing
        planes = to_planes(XorWords(~diff if party.id == 0 else U64(0) - diff))
    while len(planes) > 1:
        if _fan_in(party, planes.shape[1]) == 4:
            (planes,) = await and_monomials(party, _groups(party, planes, 4, True),
                                            [[0, 1, 2, 3]])
        else:
            pairs = _groups(party, planes, 2, True)
            planes = await and_words(party, XorPlanes(pairs[0]), XorPlanes(pairs[1]))
    return XorBits(plane_to_bits(planes[0], diff.size).reshape(difference.shape))


async def equal(party: Party, x: Additive, y: Additive) -> Additive:
    """Additive 0/1 shares of [x == y]. equal_bits and 1 round (4 or 7 rounds)."""
    return await bits_to_arith(party, await equal_bits(party, x, y))


async def clamp(party: Party, x: Additive, low: Additive, high: Additive) -> Additive:
    """min(max(x, low), high) elementwise, for shared bounds with low <= high (public ones as
    Party.public shares): x + [x < low](low - x) + [x > high](high - x), the two comparisons
    side by side and both products in one round. less_than_bits and 1 round."""
    outside = await less_than_bits(party, Additive(np.stack([x, high])),
                                   Additive(np.stack([low, x])))
    corrections = await bits_times(party, outside, Additive(np.stack([low - x, high - x])))
    return Additive(x + corrections.sum(axis=0, dtype=U64))


async def clamp_public(party: Party, x: Additive, low, high) -> Additive:
    """min(max(x, low), high) elementwise for ANY x in Z_2^64 (read as signed) and public int64
    bounds low <= high < 2^63 - 1, per element or one for all: for values whose shares a
    malicious owner chose, where |x - bound| < 2^63, on which `clamp` relies, may not hold.

    For public c, [x < c] = msb(x) OR msb(x - c) when c >= 0, and msb(x) AND msb(x - c) when
    c < 0: where the signs of x and c differ, the sign of x decides; where they agree, x - c
    cannot wrap. The msbs of x, x - low and x - (high + 1) come from one msb_bits call, both
    ANDs (OR as a ^ b ^ ab) from one round, and x + [x < low](low - x) + [x > high](high - x)
    from one bits_times round. msb_bits' rounds on 3n values + 2; per value 3 msbs and 16.75
    bytes more (2 bits ANDed, 2 products): with a dealer from 2^17 / 3 values 65 rounds and
    65 bytes per server, from 342 to 2^17 / 3 values 9 rounds and about 160 bytes; with OT
    from 2^11 / 3 values (block by block) 16 rounds, 233 COTs and about 180 bytes per server.
    Where low is 0 (amounts, booleans, codes) [x < 0] is msb(x): 2 msbs and 1 AND per value.
    """
    x = Additive(np.asarray(x, U64))
    if x.size == 0:
        return x.copy()
    low, high = (np.broadcast_to(np.asarray(b, np.int64), x.shape).ravel() for b in (low, high))
    if np.any(low > high) or np.any(high == np.iinfo(np.int64).max):
        raise ValueError("clamp_public needs low <= high < 2^63 - 1")
    value = x.ravel()
    limit = high + 1  # [x > high] = 1 - [x < high + 1]
    low_words, high_words, limit_words = (b.view(U64) for b in (low, high, limit))
    lowered = low != 0  # [x < 0] is msb(x) itself: no msb of x - low, no AND
    bits = await msb_bits(party, Additive(np.concatenate(
        [value, (value - party.public(low_words))[lowered], value - party.public(limit_words)])))
    sign, under_low, under_limit = np.split(bits, np.cumsum([value.size, lowered.sum()]))
    ands = await and_bits(party, XorBits(np.concatenate([sign[lowered], sign])),
                          XorBits(np.concatenate([under_low, under_limit])))

    def less(signs, under: np.ndarray, both: np.ndarray, bound: np.ndarray) -> np.ndarray:
        """XOR shares of [x < bound] from msb(x), msb(x - bound) and their AND."""
        return np.where(bound >= 0, signs ^ under ^ both, both).astype(np.uint8)

    below = sign.copy()
    below[lowered] = less(sign[lowered], under_low, ands[:len(under_low)], low[lowered])
    above = less(sign, under_limit, ands[len(under_low):], limit) ^ np.uint8(party.id == 0)
    corrections = await bits_times(party, XorBits(np.stack([below, above])),
                                   Additive(np.stack([party.public(low_words) - value,
                                                      party.public(high_words) - value])))
    return Additive((value + corrections.sum(axis=0, dtype=U64)).reshape(x.shape))


async def mux(party: Party, choice: Additive, if_one: Additive, if_zero: Additive) -> Additive:
    """choice ? if_one : if_zero, choice additive 0/1. 1 round, 16 bytes."""
    return Additive(if_zero + await mul(party, choice, Additive(if_one - if_zero)))
