"""Purification: every real row floor(N/|J|) or floor(N/|J|) + 1 times, no dummy left."""

from collections import Counter

import numpy as np
import pytest

from tests.support.harness import reconstruct, run_pair, shares_of
from twofold.ml.purify import compact_and_count, purify


def run_purify(valid, protocol):
    rng = np.random.default_rng(len(valid) * 7 + int(valid.sum()))
    ids = np.arange(len(valid)) + 100
    v0, v1 = shares_of(valid, rng)
    i0, i1 = shares_of(ids, rng)

    async def program(party, v, i):
        return await protocol(party, v, [i])

    return run_pair(program, (v0, i0), (v1, i1), timeout_s=60), ids


@pytest.mark.parametrize("n, real", [(16, 3), (16, 1), (16, 16), (17, 5), (100, 33), (257, 2),
                                     (64, 40), (2, 1), (1000, 999)])
def test_purified_multiplicities(n, real):
    valid = np.zeros(n, np.int64)
    valid[np.random.default_rng(n + real).choice(n, real, replace=False)] = 1
    result, ids = run_purify(valid, purify)
    (column,) = reconstruct(result)
    counts = Counter(column.tolist())
    real_ids = set(ids[valid == 1].tolist())
    assert set(counts) == real_ids  # only real rows, every one of them
    low = n // real
    assert set(counts.values()) <= {low, low + 1}
    assert sum(counts.values()) == n


def test_level_3_compaction_reveals_the_count_and_keeps_order():
    valid = np.array([0, 1, 1, 0, 0, 1, 0])
    ((size0, col0), (size1, col1)), ids = run_purify(valid, compact_and_count)
    assert size0 == size1 == 3
    assert (col0[0] + col1[0])[:3].tolist() == ids[valid == 1].tolist()


@pytest.mark.parametrize("seed", range(6))
def test_purified_multiplicities_random(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 300))
    valid = (rng.random(n) < rng.uniform(0.05, 1)).astype(np.int64)
    valid[rng.integers(0, n)] = 1
    result, ids = run_purify(valid, purify)
    counts = Counter(reconstruct(result)[0].tolist())
    low = n // int(valid.sum())
    assert set(counts) == set(ids[valid == 1].tolist())
    assert set(counts.values()) <= {low, low + 1}


def test_which_rows_get_an_extra_copy_does_not_follow_the_input_order():
    """100 real rows of 125: 25 get a second copy, chosen at random, not the first 25 of the
    input (which, in a table sorted by its label, would all share one label)."""
    valid = np.ones(125, np.int64)
    valid[100:] = 0
    twice = []
    for _ in range(2):
        result, ids = run_purify(valid, purify)
        counts = Counter(reconstruct(result)[0].tolist())
        twice.append({row for row, count in counts.items() if count == 2})
        assert len(twice[-1]) == 25
    first_rows = set(ids[:25].tolist())
    assert twice[0] != first_rows and twice[1] != first_rows and twice[0] != twice[1]
