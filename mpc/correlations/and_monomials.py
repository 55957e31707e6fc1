"""Masks and mask products for multi-input AND gates in one round (fan-in-4 trees with a
dealer, mpc.protocols.boolean)."""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from twofold.mpc.correlations.kind import CorrelationError, Kind, count_of

MAX_AND_INPUTS = 4  # a monomial of k inputs costs 2^k terms online and 2^k - k - 1 products
MAX_AND_VARIABLES = 8
MAX_MONOMIALS = 8


def submasks(mask: int):
    """Every subset of the bit mask, itself first and the empty set last."""
    subset = mask
    while True:
        yield subset
        if not subset:
            return
        subset = (subset - 1) & mask


def monomial_mask(monomial) -> int:
    return sum(1 << i for i in monomial)


def product_subsets(monomials) -> list[int]:
    """The variable sets (as bit masks) of at least two variables inside some monomial, in
    increasing order: the mask products a multi-input AND of these monomials needs."""
    return sorted({subset for monomial in monomials
                   for subset in submasks(monomial_mask(monomial)) if subset.bit_count() >= 2})


def _variables(monomials) -> int:
    return 1 + max(max(monomial) for monomial in monomials)


class AndMonomials(Kind):
    """Masks a_0 .. a_{k-1} (XOR-shared words) and XOR shares of a_S = AND of a_i over i in S,
    for every set S of two or more variables inside one of the monomials (product_subsets):
    with d_i = x_i ^ a_i opened, the AND of a monomial's x_i is the XOR over S inside it of
    (AND of d_i outside S) & a_S, so monomials of up to MAX_AND_INPUTS inputs take one round.
    The dealer sends one word per product; a fan-in-4 carry node needs 22. The dealer's alone:
    from OT a mask product would cost about as much as an AND triple, so OT sources keep AND
    trees binary (CorrelationSource.cheap_ands)."""

    name = "and_monomials"
    dealer_only = True
    examples = ({"shape": [3, 5], "monomials": [[5, 2], [5, 4, 1], [5, 4, 3, 0], [5, 4, 3, 6]]},
                {"shape": [1], "monomials": [[0, 1]]})

    class Part(NamedTuple):
        masks: np.ndarray  # XOR shares of a_i, one row per variable
        products: np.ndarray  # XOR shares of a_S, one row per set of product_subsets

    def validate(self, params):
        count_of(params["shape"])
        monomials = params["monomials"]
        if not (isinstance(monomials, list) and 0 < len(monomials) <= MAX_MONOMIALS and all(
                isinstance(m, list) and 2 <= len(m) <= MAX_AND_INPUTS and len(set(m)) == len(m)
                and all(isinstance(i, int) and not isinstance(i, bool)
                        and 0 <= i < MAX_AND_VARIABLES for i in m) for m in monomials)):
            raise CorrelationError(f"monomials must be 1 to {MAX_MONOMIALS} lists of 2 to "
                                   f"{MAX_AND_INPUTS} distinct variables below "
                                   f"{MAX_AND_VARIABLES}")
        count_of([_variables(monomials) + len(product_subsets(monomials)), *params["shape"]])

    def elements(self, params):
        monomials = params["monomials"]
        return ((_variables(monomials) + len(product_subsets(monomials)))
                * count_of(params["shape"]))

    def own(self, party, prg, params):
        monomials, shape = params["monomials"], tuple(params["shape"])
        parts = [prg.words((_variables(monomials), *shape))]
        if party == 0:
            parts.append(prg.words((len(product_subsets(monomials)), *shape)))
        return parts

    def correction(self, own0, own1, params):
        (a0, products0), (a1,) = own0, own1
        masks = np.bitwise_xor(a0, a1, out=a1)
        made: dict[int, np.ndarray] = {1 << i: masks[i] for i in range(len(masks))}
        for row, subset in enumerate(product_subsets(params["monomials"])):
            high = 1 << (subset.bit_length() - 1)  # every smaller subset is made before
            made[subset] = made[subset ^ high] & made[high]
            products0[row] ^= made[subset]
        return [products0]

    def assemble(self, party, own, correction, params):
        return self.Part(own[0], own[1] if party == 0 else correction[0])

    async def by_ot(self, ot, params):
        raise CorrelationError(f"{self.name} is made by a dealer only")

    def check(self, params, part0, part1, mask=None):
        (a0, c0), (a1, c1) = part0, part1
        masks, monomials = a0 ^ a1, params["monomials"]
        assert masks.shape == (1 + max(map(max, monomials)), *params["shape"])
        # the products' sets, enumerated afresh rather than by product_subsets
        subsets = sorted({sum(1 << i for i in chosen) for m in monomials
                          for size in range(2, len(m) + 1)
                          for chosen in itertools.combinations(m, size)})
        assert len(subsets) == len(c0)
        for subset, product in zip(subsets, c0 ^ c1, strict=True):
            expected = ~np.zeros_like(masks[0])
            for i in range(len(masks)):
                if subset >> i & 1:
                    expected &= masks[i]
            assert np.array_equal(product, expected)
