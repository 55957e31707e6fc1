"""Truncation pairs (truncate), and Beaver triples whose product comes masked for truncation
(fixed_mul): mpc.protocols.arithmetic, docs/mpc.md "Truncation"."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from twofold.mpc.correlations.kind import CorrelationError, Kind, count_of
from twofold.mpc.correlations.merging import ELEMENTWISE
from twofold.mpc.prg import Prg
from twofold.mpc.ring import U64

LOW_HALF = (1 << 32) - 1
HIGH_HALF = LOW_HALF << 32


def _validate(params) -> None:
    count_of(params["shape"])
    if not (isinstance(params["frac_bits"], int) and 0 < params["frac_bits"] < 62):
        raise CorrelationError("frac_bits must be in 1..61")


def _check_truncation(r: np.ndarray, msb: np.ndarray, low: np.ndarray, frac_bits: int,
                      msb_bits: int = 64) -> None:
    """msb and low are shares of msb(r) (modulo 2^msb_bits) and of (r mod 2^63) >> f."""
    unused = U64(64 - msb_bits)
    assert np.array_equal(msb << unused, (r >> U64(63)) << unused)
    assert np.array_equal(low, (r & U64(2**63 - 1)) >> U64(frac_bits))


class TruncationPairs(Kind):
    """Random r with additive shares of r, of msb(r) and of (r mod 2^63) >> f."""

    name = "truncation_pairs"
    merging = ELEMENTWISE
    examples = ({"shape": [60], "frac_bits": 16}, {"shape": [5], "frac_bits": 40})

    class Part(NamedTuple):
        r: np.ndarray
        msb: np.ndarray  # shares of msb(r)
        low: np.ndarray  # shares of (r mod 2^63) >> f

    def validate(self, params):
        _validate(params)

    def own(self, party, prg, params):
        shape = tuple(params["shape"])
        parts = [prg.words(shape)]
        return parts + [prg.words(shape), prg.words(shape)] if party == 0 else parts

    def correction(self, own0, own1, params):
        (r0, msb0, low0), (r1,) = own0, own1
        r = r0 + r1
        low = (r & np.uint64((1 << 63) - 1)) >> np.uint64(params["frac_bits"])
        return [(r >> np.uint64(63)) - msb0, low - low0]

    async def by_ot(self, ot, params):
        return self.Part(*await ot.truncation_pairs(tuple(params["shape"]),
                                                    params["frac_bits"]))

    def check(self, params, part0, part1, mask=None):
        (r0, m0, l0), (r1, m1, l1) = part0, part1
        _check_truncation(r0 + r1, m0 + m1, l0 + l1, params["frac_bits"])


class TruncatedTriples(Kind):
    """A Beaver triple whose product comes masked for truncation: a, b, t = a * b + r, and
    shares of msb(r) and of (r mod 2^63) >> f for a random r that no server holds. A
    fixed-point product x * y opens x - a and y - b, then x * y + 2^62 + r = t + (x - a) b
    + (y - b) a + (x - a)(y - b) + 2^62, and truncates as truncate does: one request, one
    dealer message, for both rounds.

    16 bytes per element from the dealer (t and one packed word), not 24, because r is built
    around the servers' seeds: each server p draws L_p, and r's bits f to 62 are
    low = (L0 + L1) mod 2^(63 - f), so L_p is already a share of low up to k 2^(63 - f),
    k = (L0 + L1) >> (63 - f). k is independent of low and r (L0 is uniform), so server 1 may
    learn it; msb(r)'s shares only matter modulo 2^(f + 1), as truncation multiplies them by
    2^(63 - f). Server 1's word is (msb(r) - m0) mod 2^32 + k 2^(63 - f), the two in disjoint
    bits as f < 32: as it stands it is server 1's share of msb(r) (k 2^(63 - f) times
    2^(63 - f) vanishes), and its upper 32 bits are what L1 lacks. r's other bits come from
    a stream under K0 xor K1, a key neither server knows."""

    name = "truncated_triples"
    merging = ELEMENTWISE
    examples = ({"shape": [60], "frac_bits": 16}, {"shape": [3, 5], "frac_bits": 31},
                {"shape": [7], "frac_bits": 1})

    class Part(NamedTuple):
        a: np.ndarray
        b: np.ndarray
        t: np.ndarray  # a * b + r
        msb: np.ndarray  # shares of msb(r), modulo 2^(f + 1) only
        low: np.ndarray  # shares of (r mod 2^63) >> f

    def validate(self, params):
        _validate(params)
        if params["frac_bits"] >= 32:
            raise CorrelationError(f"{self.name} needs frac_bits in 1..31")

    def own(self, party, prg, params):
        shape = tuple(params["shape"])
        parts = [prg.words(shape), prg.words(shape), prg.words(shape)]  # a, b, L
        return parts + [prg.words(shape), prg.words(shape)] if party == 0 else parts  # t, m

    def dealer_correction(self, keys, seq, params, mask=None):
        (a0, b0, low0, t0, msb0), (a1, b1, low1) = (self.own(p, Prg(keys[p], seq), params)
                                                    for p in (0, 1))
        shape, f = tuple(params["shape"]), U64(params["frac_bits"])
        # msb(r), r's low f
        bits = Prg(bytes(x ^ y for x, y in zip(*keys, strict=True)), seq).words(shape)
        # in place, reusing the seed-derived arrays: each fresh temporary costs a page-faulted
        # allocation
        product = np.multiply(np.add(a0, a1, out=a0), np.add(b0, b1, out=b0), out=a0)
        shares_sum = np.add(low0, low1, out=low0)
        low_bits = np.left_shift(shares_sum, U64(1) + f, out=low1)
        low_bits >>= U64(1)  # low = (L0 + L1) mod 2^(63 - f), at bits f to 62
        product += low_bits
        product += np.bitwise_and(bits, U64((1 << 63) | ((1 << int(f)) - 1)), out=b0)
        t1 = np.subtract(product, t0, out=product)  # a b + r - t0
        word = np.right_shift(bits, U64(63), out=bits)
        word -= msb0
        word &= U64(LOW_HALF)
        shares_sum >>= U64(63) - f  # k
        shares_sum <<= U64(63) - f
        word |= shares_sum
        return [t1, word]

    def assemble(self, party, own, correction, params):
        if party == 0:
            a, b, low, t, msb = own
            return self.Part(a, b, t, msb, low)
        (a, b, low), (t, word) = own, correction
        low -= word & U64(HIGH_HALF)
        return self.Part(a, b, t, word, low)

    async def by_ot(self, ot, params):
        """A Beaver triple and a truncation pair, r added to the product (nobody keeps a share
        of it)."""
        shape = tuple(params["shape"])
        a, b, c = await ot.beaver_triples(shape)
        r, msb, low = await ot.truncation_pairs(shape, params["frac_bits"])
        return self.Part(a, b, c + r, msb, low)

    def check(self, params, part0, part1, mask=None):
        """t - a * b is a truncation pair's r, whose msb is shared modulo 2^(f + 1) only."""
        (a0, b0, t0, m0, l0), (a1, b1, t1, m1, l1) = part0, part1
        f = params["frac_bits"]
        assert a0.shape == tuple(params["shape"])
        _check_truncation(t0 + t1 - (a0 + a1) * (b0 + b1), m0 + m1, l0 + l1, f, msb_bits=f + 1)
