"""Boolean (XOR) shares and the conversions and comparisons built on them.

Two layouts of XOR-shared bits:
- words: one uint64 per value, bit j of the value in bit j of the word (A2B output, sort keys);
- planes: for n values, a (bits, ceil(n/64)) uint64 array whose row j packs bit j of all n
  values, 64 to a word. Comparison trees work plane by plane, so each level of the tree halves
  the number of planes, and the bytes sent shrink with it.
Single bits (comparison results) are uint8 0/1 arrays, packed 8 to a byte on the wire.
"""

from __future__ import annotations

import numpy as np

from mpc.party import Party
from mpc.protocols.arithmetic import mul

U64 = np.uint64
ALL_ONES = U64(0xFFFF_FFFF_FFFF_FFFF)


async def and_many(party: Party, pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
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
    return out


async def and_words(party: Party, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    (z,) = await and_many(party, [(x, y)])
    return z


# ---- layouts -----------------------------------------------------------------------------

_TRANSPOSE_STEPS = [(32, 0x00000000FFFFFFFF), (16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF),
                    (4, 0x0F0F0F0F0F0F0F0F), (2, 0x3333333333333333), (1, 0x5555555555555555)]


def to_planes(words: np.ndarray, bits: int = 64) -> np.ndarray:
    """(n,) uint64 words -> (bits, ceil(n/64)) planes of their low `bits` bits.

    Each block of 64 words is a 64 x 64 bit matrix whose transpose holds the block's planes;
    it is transposed in place by six swaps of ever smaller sub-blocks (Hacker's Delight 7-3),
    every block at once: six passes over the words instead of unpacking 64 bytes per word."""
    n = len(words)
    width = (n + 63) // 64
    blocks = np.zeros(width * 64, U64)
    blocks[:n] = words
    blocks = blocks.reshape(width, 64)
    for step, mask in _TRANSPOSE_STEPS:
        pairs = blocks.reshape(width, 32 // step, 2, step)
        low, high = pairs[:, :, 0, :], pairs[:, :, 1, :]
        swapped = ((low >> U64(step)) ^ high) & U64(mask)
        high ^= swapped
        low ^= swapped << U64(step)
    return np.ascontiguousarray(blocks.T[:bits])


def plane_to_bits(plane: np.ndarray, n: int) -> np.ndarray:
    """One packed plane -> (n,) uint8 0/1."""
    return np.unpackbits(np.ascontiguousarray(plane).view(np.uint8), count=n, bitorder="little")


def pack_bits(bits: np.ndarray) -> np.ndarray:
    return np.packbits(bits, bitorder="little")


# ---- conversions -------------------------------------------------------------------------

async def bits_to_arith(party: Party, bits: np.ndarray) -> np.ndarray:
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
    return result.reshape(shape)


def _bit_product(opened, operand, r_arith, masked, gamma):
    """Shares of b * operand from the opened c = b ^ r and e = operand - beta, with bit triples
    (r, beta, gamma = r * beta): b = c + (1 - 2c) r, so b * operand = c * operand
    + (1 - 2c)(r * e + gamma)."""
    return opened * operand + (U64(1) - U64(2) * opened) * (r_arith * masked + gamma)


async def bits_to_arith_times(party: Party, bits: np.ndarray, operands_of):
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
    operand = np.ravel(operands_of(b.reshape(shape)))
    e_mine = operand - beta
    (e_other,) = await party.link.exchange(e_mine)
    product = _bit_product(opened, operand, r_arith, e_mine + e_other, gamma)
    return b.reshape(shape), product.reshape(shape)


async def bits_times(party: Party, bits: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Additive shares of b * v for XOR-shared 0/1 bits b and additive values v of the same
    shape. v does not depend on b, so c = b ^ r and e = v - beta are opened together.
    1 round, 8 + 1/8 bytes per product."""
    shape, flat, operand = np.shape(bits), np.ravel(bits), np.ravel(values)
    r_bits, beta, r_arith, gamma = await party.corr.bit_triples(flat.size)
    mine, e_mine = pack_bits(flat ^ r_bits), operand - beta
    other, e_other = await party.link.exchange(mine, e_mine)
    opened = np.unpackbits(mine ^ other, count=flat.size, bitorder="little").astype(U64)
    return _bit_product(opened, operand, r_arith, e_mine + e_other, gamma).reshape(shape)


async def and_bits(party: Party, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x & y for XOR-shared 0/1 uint8 bit vectors, packed 64 to a word. 1 round, n/4 bytes."""
    n = len(x)

    def words(bits):
        packed = np.zeros(((n + 63) // 64) * 8, np.uint8)
        packed[: (n + 7) // 8] = pack_bits(bits)
        return packed.view(U64)

    product = await and_words(party, words(x), words(y))
    return np.unpackbits(product.view(np.uint8), count=n, bitorder="little")


async def add_words(party: Party, u: np.ndarray, v: np.ndarray, bits: int = 64) -> np.ndarray:
    """XOR shares of the low `bits` bits of u + v (mod 2^bits), for XOR-shared words u, v.

    Kogge-Stone carry prefix: 1 + ceil(log2 bits) rounds; at 64 bits, 12 ANDed words,
    192 bytes per value.
    """
    generate = await and_words(party, u, v)
    propagate = u ^ v
    carry_g, carry_p = generate, propagate
    shift = 1
    while shift < bits:
        last = shift * 2 >= bits
        pairs = [(carry_p, carry_g << U64(shift))]
        if not last:
            pairs.append((carry_p, carry_p << U64(shift)))
        results = await and_many(party, pairs)
        carry_g = carry_g ^ results[0]
        if not last:
            carry_p = results[1]
        shift *= 2
    total = propagate ^ (carry_g << U64(1))
    return total if bits == 64 else total & U64((1 << bits) - 1)


async def arith_to_bool(party: Party, x: np.ndarray, bits: int = 64) -> np.ndarray:
    """A2B: additive shares -> XOR shares of the low `bits` bits. Server p's own share is a
    XOR sharing held by p alone; a shared adder sums the two. Rounds and bytes of add_words."""
    x = np.asarray(x, U64)
    zero = np.zeros_like(x)
    mine, theirs = (x, zero) if party.id == 0 else (zero, x)
    return await add_words(party, mine, theirs, bits)


async def bool_to_arith(party: Party, words: np.ndarray) -> np.ndarray:
    """B2A of 64-bit words with edaBits: open y = w + r in a shared adder, then w = y - r.

    add_words plus 1 round; 200 bytes per value; the dealer sends 8 bytes per value.
    """
    r_bool, r_arith = await party.corr.edabits(words.shape)
    y_bool = await add_words(party, words, r_bool)
    (other,) = await party.link.exchange(y_bool)
    opened = y_bool ^ other
    return (opened - r_arith) if party.id == 0 else (U64(0) - r_arith)


# ---- comparisons -------------------------------------------------------------------------

def _owner_split_planes(party: Party, x: np.ndarray):
    """Planes of this server's own share, as the two XOR sharings (z0, 0) and (0, z1)."""
    planes = to_planes(np.ravel(x))
    zero = np.zeros_like(planes)
    return planes, ((planes, zero) if party.id == 0 else (zero, planes))


async def msb_bits(party: Party, x: np.ndarray) -> np.ndarray:
    """XOR-shared msb of additively shared x, as (n,) uint8 bits.

    msb(x0 + x1) = x0[63] ^ x1[63] ^ carry into bit 63, the carry found by a tree over the 63
    low bit planes. 7 rounds; about 190 bits ANDed per value, 48 bytes per value.
    """
    n = x.size
    planes, (u, v) = _owner_split_planes(party, x)
    generate = await and_words(party, u[:63], v[:63])
    propagate = planes[:63]
    # pad to 64 groups with the identity of the carry operator: generate 0, propagate 1
    identity_p = np.full((1, planes.shape[1]), ALL_ONES if party.id == 0 else 0, U64)
    generate = np.vstack([generate, np.zeros_like(identity_p)])
    propagate = np.vstack([propagate, identity_p])
    while len(generate) > 1:
        g_lo, g_hi, p_lo, p_hi = generate[0::2], generate[1::2], propagate[0::2], propagate[1::2]
        if len(generate) == 2:
            generate = g_hi ^ await and_words(party, p_hi, g_lo)
            break
        carried, both = await and_many(party, [(p_hi, g_lo), (p_hi, p_lo)])
        generate, propagate = g_hi ^ carried, both
    top = planes[63] ^ generate[0]
    return plane_to_bits(top, n).reshape(np.shape(x))


async def less_than_bits(party: Party, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """XOR-shared [x < y] for signed x, y with |x - y| < 2^63. 7 rounds, 48 bytes."""
    return await msb_bits(party, np.asarray(x, U64) - np.asarray(y, U64))


async def less_than(party: Party, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Additive 0/1 shares of [x < y]. 8 rounds, 48 bytes."""
    return await bits_to_arith(party, await less_than_bits(party, x, y))


async def greater_than(party: Party, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return await less_than(party, y, x)


async def equal_bits(party: Party, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """XOR-shared [x == y] for any x, y in Z_2^64.

    x == y iff z0 == -z1 for z = x - y, i.e. iff every bit of ~z0 ^ (-z1) is set: an AND tree
    over 64 planes. 6 rounds, 63 bits ANDed per value, 16 bytes per value.
    """
    difference = np.asarray(x, U64) - np.asarray(y, U64)
    diff = np.ravel(difference)
    own = ~diff if party.id == 0 else U64(0) - diff
    planes = to_planes(own)
    while len(planes) > 1:
        planes = await and_words(party, planes[0::2], planes[1::2])
    return plane_to_bits(planes[0], diff.size).reshape(difference.shape)


async def equal(party: Party, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Additive 0/1 shares of [x == y]. 7 rounds."""
    return await bits_to_arith(party, await equal_bits(party, x, y))


async def clamp(party: Party, x: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """min(max(x, low), high) elementwise, for shared bounds with low <= high (public ones as
    Party.public shares): x + [x < low](low - x) + [x > high](high - x), the two comparisons
    side by side and both products in one round. 8 rounds, 64 bytes per value."""
    outside = await less_than_bits(party, np.stack([x, high]), np.stack([low, x]))
    return x + (await bits_times(party, outside, np.stack([low - x, high - x]))).sum(
        axis=0, dtype=U64)


async def mux(party: Party, choice: np.ndarray, if_one: np.ndarray, if_zero: np.ndarray):
    """choice ? if_one : if_zero, choice additive 0/1. 1 round, 16 bytes."""
    return if_zero + await mul(party, choice, if_one - if_zero)
