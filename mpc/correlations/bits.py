"""Random bits and words shared both ways (daBits, edaBits), and bits with half Beaver
triples, for multiplying a shared bit by shared values."""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import numpy as np

from twofold.mpc.correlations.kind import Kind, count_of, require_positive
from twofold.mpc.correlations.merging import ALONE, ELEMENTWISE, Merging
from twofold.mpc.ring import U64


def _bits(values: np.ndarray) -> np.ndarray:
    assert values.dtype == np.uint8 and set(np.unique(values).tolist()) <= {0, 1}
    return values


class DaBits(Kind):
    """Random bits r held both as XOR shares (uint8 0/1) and as additive shares (uint64)."""

    name = "dabits"
    merging = ELEMENTWISE
    examples = ({"shape": [70]},)

    class Part(NamedTuple):
        bits: np.ndarray  # XOR shares of r, uint8 0/1
        arith: np.ndarray  # additive shares of r

    def own(self, party, prg, params):
        (count,) = params["shape"]
        parts = [prg.bits(count)]
        return parts + [prg.words(count)] if party == 0 else parts

    def correction(self, own0, own1, params):
        (bits0, arith0), (bits1,) = own0, own1
        return [(bits0 ^ bits1).astype(np.uint64) - arith0]

    async def by_ot(self, ot, params):
        return self.Part(*await ot.dabits(params["shape"][0]))

    def check(self, params, part0, part1, mask=None):
        (r0, ra0), (r1, ra1) = part0, part1
        assert np.array_equal((_bits(r0) ^ _bits(r1)).astype(U64), ra0 + ra1)


class EdaBits(Kind):
    """Random words r held both as XOR shares and as additive shares (uint64 each)."""

    name = "edabits"
    merging = ELEMENTWISE
    examples = ({"shape": [40]},)

    class Part(NamedTuple):
        bools: np.ndarray  # XOR shares of r
        arith: np.ndarray  # additive shares of r

    def own(self, party, prg, params):
        shape = tuple(params["shape"])
        parts = [prg.words(shape)]
        return parts + [prg.words(shape)] if party == 0 else parts

    def correction(self, own0, own1, params):
        (bool0, arith0), (bool1,) = own0, own1
        return [(bool0 ^ bool1) - arith0]

    async def by_ot(self, ot, params):
        return self.Part(*await ot.edabits(tuple(params["shape"])))

    def check(self, params, part0, part1, mask=None):
        (r0, ra0), (r1, ra1) = part0, part1
        assert np.array_equal(r0 ^ r1, ra0 + ra1)


class BitProducts(NamedTuple):
    """This party's shares of random bits r and of a half Beaver triple for each value
    multiplied by r."""

    bits: np.ndarray  # XOR shares of r, uint8 0/1
    beta: np.ndarray  # random values, as many as are multiplied per bit (rows x n, or n)
    arith: np.ndarray  # additive shares of r
    gamma: np.ndarray  # additive shares of r * beta


def _check_bit_products(part0: BitProducts, part1: BitProducts, shape=None) -> None:
    """shape: beta's and gamma's (None: r's)."""
    (r0, beta0, ra0, g0), (r1, beta1, ra1, g1) = part0, part1
    r = (_bits(r0) ^ _bits(r1)).astype(U64)
    shape = r.shape if shape is None else shape
    assert beta0.shape == beta1.shape == g0.shape == g1.shape == shape
    assert np.array_equal(r, ra0 + ra1) and np.array_equal(r * (beta0 + beta1), g0 + g1)


class BitTriples(Kind):
    """daBits r plus a half Beaver triple (beta, gamma = r * beta): multiplies a shared bit by a
    shared value opening only one word (value - beta)."""

    name = "bit_triples"
    Part = BitProducts
    merging: ClassVar[Merging] = ELEMENTWISE  # as Kind declares them: BitRowTriples overrides
    examples: ClassVar[tuple[dict, ...]] = ({"shape": [70]},)

    def own(self, party, prg, params):
        (count,) = params["shape"]
        parts = [prg.bits(count), prg.words(count)]
        return parts + [prg.words(count), prg.words(count)] if party == 0 else parts

    def correction(self, own0, own1, params):
        (bits0, beta0, arith0, gamma0), (bits1, beta1) = own0, own1
        r = (bits0 ^ bits1).astype(np.uint64)
        return [r - arith0, r * (beta0 + beta1) - gamma0]

    def assemble(self, party, own, correction, params):
        if party == 0:
            return BitProducts(*own)
        return BitProducts(own[0], own[1], *correction)

    async def by_ot(self, ot, params):
        """bit_row_triples' construction with one row."""
        bits, beta, arith, gamma = await ot.bit_row_triples(1, params["shape"][0])
        return BitProducts(bits, beta[0], arith, gamma[0])

    def check(self, params, part0, part1, mask=None):
        _check_bit_products(part0, part1)


class BitRowTriples(BitTriples):
    """bit_triples for k values per bit: daBits r (n), beta (k x n) and gamma = r * beta row
    by row (bit_triples' correction broadcasts over the rows). Multiplies a shared 0/1 flag by
    k shared values (mpc.protocols.boolean.flag_rows), opening one bit and k words per
    column."""

    name = "bit_row_triples"
    merging = ALONE
    examples = ({"rows": 3, "n": 70}, {"rows": 1, "n": 5}, {"rows": 2, "n": 0})

    def validate(self, params):
        require_positive(params, "rows")
        count_of([params["rows"] + 1, params["n"]])

    def elements(self, params):
        return 2 * (params["rows"] + 1) * params["n"]

    def own(self, party, prg, params):
        rows, n = params["rows"], params["n"]
        parts = [prg.bits(n), prg.words((rows, n))]
        return parts + [prg.words(n), prg.words((rows, n))] if party == 0 else parts

    async def by_ot(self, ot, params):
        return BitProducts(*await ot.bit_row_triples(params["rows"], params["n"]))

    def check(self, params, part0, part1, mask=None):
        _check_bit_products(part0, part1, (params["rows"], params["n"]))
