"""Arithmetic shares over Z_2^64: input, reveal, multiplication, matrix product, truncation.

Addition, subtraction and multiplication by a public integer are local numpy operations on the
shares (x + y, x - y, c * x); adding a public value is Party.public(c) + x.
"""

from __future__ import annotations

import numpy as np

from twofold.mpc.errors import ProtocolMismatch
from twofold.mpc.party import Party
from twofold.mpc.ring import U64, as_ring, public_factor
from twofold.mpc.shares import Additive


async def share_input(party: Party, owner: int, values=None, shape=None) -> Additive:
    """The owner server secret-shares its own plaintext values. 1 round, 8 bytes (owner)."""
    if party.id == owner:
        values = np.asarray(values, dtype=U64)
        mask = party.rng.words(values.shape)
        await party.link.send(mask)
        return Additive(values - mask)
    (mask,) = await party.link.recv()
    shape = (shape,) if isinstance(shape, int) else shape
    if shape is not None and tuple(mask.shape) != tuple(shape):
        raise ValueError(f"expected input of shape {tuple(shape)}, got {mask.shape}")
    return Additive(mask.copy())


async def reveal(party: Party, x: Additive) -> np.ndarray:
    """Open x to both servers. 1 round, 8 bytes."""
    (other,) = await party.link.exchange(x)
    return x + other


async def reveal_to(party: Party, x: Additive, receiver: int) -> np.ndarray | None:
    """Open x to one server only; the other gets None. 1 round, 8 bytes (sender)."""
    if party.id == receiver:
        return await _opened_here(party, x)
    await party.link.send(x)
    return None


async def _opened_here(party: Party, x: Additive) -> np.ndarray:
    """x opened at this server, the receiver of reveal_to, from the share the peer sends."""
    (other,) = await party.link.recv()
    if other.shape != x.shape or other.dtype != x.dtype:  # exchange checks this; recv not
        raise ProtocolMismatch(f"server {party.id}: got a {other.dtype} {other.shape} "
                               f"share to open, expected {x.dtype} {x.shape}")
    return x + other


async def mul(party: Party, x: Additive, y: Additive) -> Additive:
    """Elementwise product in Z_2^64 (Beaver). 1 round, 16 bytes."""
    xs, ys = np.broadcast_arrays(np.asarray(x, U64), np.asarray(y, U64))
    a, b, c = await party.corr.beaver_triples(xs.shape)
    d_mine, e_mine = xs - a, ys - b
    d_other, e_other = await party.link.exchange(d_mine, e_mine)
    d, e = d_mine + d_other, e_mine + e_other
    return _beaver_product(party, c, a, b, d, e)


def _beaver_product(party: Party, c: Additive, a: Additive, b: Additive, d: np.ndarray,
                    e: np.ndarray) -> Additive:
    """Shares of x * y from a triple (a, b, c = a b) and the opened d = x - a, e = y - b:
    c + d b + e a, plus d e on server 0. d and e must be the caller's own buffers (they are
    overwritten); a, b and c may be read-only. In place, because at 2^20 elements each
    temporary costs a millisecond."""
    z = np.multiply(d, b)
    z += c
    if party.id == 0:
        z += np.multiply(d, e, out=d)
    z += np.multiply(e, a, out=e)
    return Additive(z)


async def matmul(party: Party, x: Additive, y: Additive) -> Additive:
    """Matrix product (m x k) @ (k x n) with a matrix triple. 1 round, 8(mk + kn) bytes."""
    (m, k), (k2, n) = x.shape, y.shape
    if k != k2:
        raise ValueError(f"matmul shapes {x.shape} and {y.shape} do not fit")
    a, b, c = await party.corr.matrix_triples(m, k, n)
    d_mine, e_mine = x - a, y - b
    d_other, e_other = await party.link.exchange(d_mine, e_mine)
    d, e = d_mine + d_other, e_mine + e_other
    z = c + np.matmul(d, b) + np.matmul(a, e)
    if party.id == 0:
        z += np.matmul(d, e)
    return Additive(z)


ONE_WAY_OPENING = 1 << 15  # elements from which a truncation opens c to server 0 only


async def _open_truncated(party: Party, masked: Additive, r_msb: Additive,
                          r_low: Additive, f: int) -> Additive:
    """Shares of y >> f from shares of c = y + r (masked), where y = x + 2^62 lies
    in [0, 2^63): y >> f = (c' >> f) - (r' >> f) + v 2^(63 - f) (+ 1), the primed values mod
    2^63 and v = msb(c) xor msb(r) = msb(c) + (1 - 2 msb(c)) msb(r), linear in msb(r)'s
    shares since msb(c) is public (docs/mpc.md, Truncation). Server 0's public part
    (c' >> f) + msb(c) 2^(63 - f) is c >> f, and server 1 needs only msb(c): from
    ONE_WAY_OPENING elements on, server 1 sends its share and server 0 answers with the bits
    of msb(c) (8 bytes one way and 1 bit back, two rounds), below it both exchange shares (one
    round, 8 bytes each way)."""
    if masked.size < ONE_WAY_OPENING:
        c = await reveal(party, masked)
        wraps = c.view(np.int64) < 0
    elif party.id == 0:
        c = await _opened_here(party, masked)  # reveal_to(party, masked, 0)
        wraps = c.view(np.int64) < 0
        await party.link.send(np.packbits(wraps, bitorder="little"))
    else:
        await reveal_to(party, masked, 0)
        (packed,) = await party.link.recv()
        if packed.shape != ((masked.size + 7) // 8,):
            raise ProtocolMismatch(f"server 1: got {packed.shape} bits of msb(c) for "
                                   f"{masked.size} elements")
        wraps = np.unpackbits(packed, count=masked.size, bitorder="little").view(bool)
        wraps = wraps.reshape(masked.shape)
    # (1 - 2 msb(c)) 2^(63 - f), in the ring
    result = np.where(wraps, U64((1 << 64) - (1 << (63 - f))), U64(1 << (63 - f)))
    result *= r_msb
    result -= r_low
    if party.id == 0:
        c >>= U64(f)
        result += c
        result -= U64(1 << (62 - f))
    return Additive(result)


async def truncate(party: Party, x: Additive, frac_bits: int | None = None) -> Additive:
    """x / 2^f for signed x with |x| < 2^62. 1 round, 8 bytes (from ONE_WAY_OPENING elements
    on: 2 rounds, 8 bytes from server 1 and 1 bit back).

    Opens c = (x + 2^62) + r for a dealer-made random r, then removes r >> f and fixes the one
    possible wrap with shares of msb(r): exact up to stochastic rounding of the last bit
    (error below 1 ulp, expected error 0), and it cannot fail badly, unlike local truncation.
    """
    f = party.fixed.frac_bits if frac_bits is None else frac_bits
    r, r_msb, r_low = await party.corr.truncation_pairs(x.shape, f)
    masked = Additive(x + r)
    if party.id == 0:
        masked += U64(1 << 62)
    return await _open_truncated(party, masked, r_msb, r_low, f)


async def fixed_mul(party: Party, x: Additive, y: Additive) -> Additive:
    """Product of fixed-point values (|x * y| < 2^62 in the ring): a Beaver product truncated
    as truncate does, from one correlation (truncated_triples) whose triple's product comes
    masked by the truncation's r, so the product itself is never formed. 2 rounds, 24 bytes
    (from ONE_WAY_OPENING elements on: 3 rounds, 16 bytes each way, then 8 from server 1 and
    1 bit back)."""
    xs, ys = np.broadcast_arrays(np.asarray(x, U64), np.asarray(y, U64))
    f = party.fixed.frac_bits
    a, b, masked_product, r_msb, r_low = await party.corr.truncated_triples(xs.shape, f)
    d_mine, e_mine = xs - a, ys - b
    d_other, e_other = await party.link.exchange(d_mine, e_mine)
    masked = _beaver_product(party, masked_product, a, b, d_mine + d_other, e_mine + e_other)
    if party.id == 0:  # shares of x * y + 2^62 + r
        masked += U64(1 << 62)
    return await _open_truncated(party, masked, r_msb, r_low, f)


async def fixed_mul_public(party: Party, x: Additive, value: float,
                           bound: float) -> Additive:
    """x times a public real number, for fixed-point x with |x| <= bound: the number is scaled
    by as many bits as the product leaves room for (mpc.ring.public_factor), so its relative
    error stays below 2^-13 (encoded with f bits, 1/1000 was off by 0.8% at f = 16).
    1 round, 8 bytes."""
    factor, shift = public_factor(value, bound * party.fixed.scale)
    return await truncate(party, Additive(x * as_ring(factor)), shift)


async def fixed_matmul(party: Party, x: Additive, y: Additive) -> Additive:
    """Fixed-point matrix product: matmul then truncate. 2 rounds."""
    return await truncate(party, await matmul(party, x, y))
