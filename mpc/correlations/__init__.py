"""Correlated randomness: every kind, each in one home, and the registry of them.

A kind is one class (kind.Kind) known by one name: the registry key, the name in requests to
the dealer and in OT cost reports, and the name of the CorrelationSource helper that asks for
it. The class declares its parameters, its parts (what a party receives for one request, as
named tuples), how the dealer makes it, how OT makes it (from mpc.ot.constructions), how
requests for it merge (merging.py) and how a test checks it. Every dispatch site (the dealer,
the dealer and OT sources, mpc.request_groups, the tests) looks kinds up in KINDS; adding a
kind is writing its class and naming it below.

- triples.py: beaver_triples, and_triples, matrix_triples;
- and_monomials.py: masks and mask products for one-round multi-input ANDs (a dealer's only);
- bits.py: dabits, edabits, bit_triples, bit_row_triples;
- one_of_n.py: random 1-out-of-N OTs;
- truncation.py: truncation_pairs, truncated_triples;
- permutations.py: permutation_masks, one shuffle pass;
- row_masks.py: row_mask and masked_products, for training.
"""

from twofold.mpc.correlations.and_monomials import AndMonomials
from twofold.mpc.correlations.bits import BitRowTriples, BitTriples, DaBits, EdaBits
from twofold.mpc.correlations.kind import MAX_ELEMENTS, CorrelationError, Kind
from twofold.mpc.correlations.one_of_n import OneOfN
from twofold.mpc.correlations.permutations import PermutationMasks
from twofold.mpc.correlations.row_masks import MaskedProducts, RowMask
from twofold.mpc.correlations.triples import AndTriples, BeaverTriples, MatrixTriples
from twofold.mpc.correlations.truncation import TruncatedTriples, TruncationPairs

KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    BeaverTriples(), AndTriples(), AndMonomials(), MatrixTriples(), DaBits(), BitTriples(),
    BitRowTriples(), OneOfN(), EdaBits(), TruncationPairs(), TruncatedTriples(),
    PermutationMasks(), RowMask(), MaskedProducts())}

__all__ = ["KINDS", "MAX_ELEMENTS", "CorrelationError", "Kind"]
