"""One pass of a shuffle: a permutation for one server, masks for the other
(mpc.protocols.shuffle)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from twofold.mpc.correlations.kind import CorrelationError, Kind, count_of


class PermutationMasks(Kind):
    """One shuffle pass: the permuter gets a permutation pi and delta = pi(a) - b (or
    pi(a) ^ b for boolean columns); the helper gets the masks a and b, one row per column.
    Columns are described by a string of 'a' (additive) and 'x' (XOR) letters."""

    name = "permutation_masks"
    examples = ({"n": 30, "columns": "axa", "permuter": 1},
                {"n": 1, "columns": "x", "permuter": 0},
                {"n": 64, "columns": "a", "permuter": 0},
                {"n": 0, "columns": "a", "permuter": 1},
                {"n": 7, "columns": "xa", "permuter": 1})

    class Permuter(NamedTuple):
        perm: np.ndarray  # pi (int64)
        delta: np.ndarray  # pi(a) - b or pi(a) ^ b, (columns x n)

    class Helper(NamedTuple):
        a: np.ndarray  # (columns x n)
        b: np.ndarray

    def validate(self, params):
        count_of([len(params["columns"]), params["n"]])
        if params["permuter"] not in (0, 1) or set(params["columns"]) - {"a", "x"}:
            raise CorrelationError("bad permutation parameters")

    def elements(self, params):
        return params["n"] * (1 + len(params["columns"]))

    def receiver(self, params):
        return params["permuter"]

    def own(self, party, prg, params):
        n, width = params["n"], len(params["columns"])
        if party == params["permuter"]:
            return [prg.permutation(n)]
        return [prg.words((width, n)), prg.words((width, n))]

    def correction(self, own0, own1, params):
        (perm,), (masks_a, masks_b) = (own0, own1) if params["permuter"] == 0 else (own1, own0)
        delta = np.take(masks_a, perm, axis=1)
        for row, kind in enumerate(params["columns"]):
            if kind == "a":
                np.subtract(delta[row], masks_b[row], out=delta[row])
            else:
                np.bitwise_xor(delta[row], masks_b[row], out=delta[row])
        return [delta]

    def assemble(self, party, own, correction, params):
        if party == params["permuter"]:
            return self.Permuter(*own, *correction)
        return self.Helper(*own)

    async def by_ot(self, ot, params):
        permuter = params["permuter"]
        value = await ot.permutation_masks(params["n"], params["columns"], permuter)
        return self.Permuter(*value) if ot.party == permuter else self.Helper(*value)

    def check(self, params, part0, part1, mask=None):
        n, columns = params["n"], params["columns"]
        helper, permuter = (part0, part1) if params["permuter"] == 1 else (part1, part0)
        (a, b), (perm, delta) = helper, permuter
        assert sorted(perm.tolist()) == list(range(n))  # a permutation, of the permuter's
        assert a.shape == b.shape == delta.shape == (len(columns), n)
        moved = a[:, perm]
        for row, column in enumerate(columns):
            expected = moved[row] - b[row] if column == "a" else moved[row] ^ b[row]
            assert np.array_equal(delta[row], expected)
