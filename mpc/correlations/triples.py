"""Beaver triples: a, b and c = a * b, elementwise in Z_2^64, on packed bits (c = a & b) or
as matrices (C = A @ B)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from twofold.mpc.correlations.kind import Kind, count_of
from twofold.mpc.correlations.merging import ELEMENTWISE
from twofold.mpc.prg import Prg


class Triple(NamedTuple):
    """This party's shares of a, b and their product c (XOR shares for AND triples)."""

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray


def _triple_parts(party: int, prg: Prg, shape) -> list[np.ndarray]:
    """a and b for both parties; party 0 also draws its share of c (party 1's is corrected)."""
    shape = tuple(shape)
    parts = [prg.words(shape), prg.words(shape)]
    return parts + [prg.words(shape)] if party == 0 else parts


def _check_product(product, part0: Triple, part1: Triple) -> None:
    (a0, b0, c0), (a1, b1, c1) = part0, part1
    assert np.array_equal(product(a0 + a1, b0 + b1), c0 + c1)


class BeaverTriples(Kind):
    """a, b, c with c = a * b in Z_2^64 (elementwise)."""

    name = "beaver_triples"
    Part = Triple
    merging = ELEMENTWISE
    examples = ({"shape": [50]}, {"shape": [3, 7]})

    def own(self, party, prg, params):
        return _triple_parts(party, prg, params["shape"])

    def correction(self, own0, own1, params):
        (a0, b0, c0), (a1, b1) = own0, own1
        return [(a0 + a1) * (b0 + b1) - c0]

    async def by_ot(self, ot, params):
        return Triple(*await ot.beaver_triples(tuple(params["shape"])))

    def check(self, params, part0, part1, mask=None):
        _check_product(np.multiply, part0, part1)


class AndTriples(Kind):
    """a, b, c with c = a & b, on packed bits (uint64 words, 64 bits each)."""

    name = "and_triples"
    Part = Triple
    merging = ELEMENTWISE
    examples = ({"shape": [3, 7]},)

    def own(self, party, prg, params):
        return _triple_parts(party, prg, params["shape"])

    def correction(self, own0, own1, params):
        (a0, b0, c0), (a1, b1) = own0, own1
        return [((a0 ^ a1) & (b0 ^ b1)) ^ c0]

    async def by_ot(self, ot, params):
        return Triple(*await ot.and_triples(tuple(params["shape"])))

    def check(self, params, part0, part1, mask=None):
        (a0, b0, c0), (a1, b1, c1) = part0, part1
        assert a0.shape == tuple(params["shape"])
        assert np.array_equal((a0 ^ a1) & (b0 ^ b1), c0 ^ c1)


class MatrixTriples(Kind):
    """A (m x k), B (k x n), C = A @ B in Z_2^64 (params "dims": [m, k, n])."""

    name = "matrix_triples"
    Part = Triple
    examples = ({"dims": [4, 5, 3]}, {"dims": [2, 30, 40]})

    def validate(self, params):
        m, k, n = params["dims"]
        count_of([m, k]), count_of([k, n]), count_of([m, n])

    def elements(self, params):
        m, k, n = params["dims"]
        return m * k + k * n + m * n

    def own(self, party, prg, params):
        m, k, n = params["dims"]
        parts = [prg.words((m, k)), prg.words((k, n))]
        return parts + [prg.words((m, n))] if party == 0 else parts

    def correction(self, own0, own1, params):
        (a0, b0, c0), (a1, b1) = own0, own1
        return [np.matmul(a0 + a1, b0 + b1) - c0]

    async def by_ot(self, ot, params):
        return Triple(*await ot.matrix_triples(*params["dims"]))

    def check(self, params, part0, part1, mask=None):
        _check_product(np.matmul, part0, part1)
