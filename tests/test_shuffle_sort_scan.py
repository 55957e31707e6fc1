"""Shuffle, sort and segmented scans against numpy, once per source of correlations."""

import itertools
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.harness import reconstruct, run_pair, shares_of, xor_shares_of
from twofold.mpc.protocols.arithmetic import reveal
from twofold.mpc.protocols.scan import segmented_scan
from twofold.mpc.protocols.shuffle import shuffle
from twofold.mpc.protocols.sort import SortKey, sort
from twofold.mpc.ring import U64, to_signed


@pytest.mark.parametrize("n", [0, 1, 2, 37, 1000])
def test_shuffle_keeps_rows_together(n, rng, source):
    a = rng.integers(0, 2**64, n, dtype=U64)
    b = rng.integers(0, 2**64, n, dtype=U64)
    a0, a1 = shares_of(a, rng)
    b0, b1 = xor_shares_of(b, rng)

    async def program(party, x, y):
        return await shuffle(party, [x, y], [False, True])

    (x0, y0), (x1, y1) = run_pair(program, (a0, b0), (a1, b1), source=source)
    rows = sorted(zip((x0 + x1).tolist(), (y0 ^ y1).tolist(), strict=True))
    assert rows == sorted(zip(a.tolist(), b.tolist(), strict=True))


def test_shuffle_is_uniform_over_permutations(source):
    """600 shuffles of (0, 1, 2) in one session: every order about 100 times."""
    rounds = 600

    async def program(party):
        seen = []
        for _ in range(rounds):
            (column,) = await shuffle(party, [party.public(np.arange(3, dtype=U64))])
            seen.append(tuple((await reveal(party, column)).tolist()))
        return seen

    seen, _ = run_pair(program, timeout_s=60, source=source)
    counts = Counter(seen)
    assert set(counts) == set(itertools.permutations(range(3)))
    chi2 = sum((c - rounds / 6) ** 2 / (rounds / 6) for c in counts.values())
    assert chi2 < 25  # 5 degrees of freedom: p < 1e-4 would be above 25.7


def sort_plain(keys, columns, widths, signed, source):
    async def program(party, key_shares, column_shares):
        sort_keys = [SortKey(k, bits=w, signed=s)
                     for k, w, s in zip(key_shares, widths, signed, strict=True)]
        return await sort(party, column_shares, sort_keys)

    rng = np.random.default_rng(7)
    key_pairs = [shares_of(k, rng) for k in keys]
    col_pairs = [shares_of(c, rng) for c in columns]
    result = run_pair(program, ([k[0] for k in key_pairs], [c[0] for c in col_pairs]),
                      ([k[1] for k in key_pairs], [c[1] for c in col_pairs]), timeout_s=60,
                      source=source)
    return reconstruct(result)


def reference_order(keys):
    return np.lexsort(tuple(reversed(keys)))  # stable, first key most significant


@pytest.mark.parametrize("n", [0, 1, 2, 3, 100, 257])
def test_sort_by_one_signed_key_is_stable(n, rng, source):
    key = rng.integers(-50, 50, n)
    payload = np.arange(n)
    got_key, got_payload = sort_plain([key], [key, payload], [64], [True], source)
    order = reference_order([key])
    assert np.array_equal(to_signed(got_key), key[order])
    assert np.array_equal(got_payload, payload[order].astype(U64))


def test_sort_full_range_64_bit_keys(rng, source):
    key = np.concatenate([rng.integers(-(2**63), 2**63 - 1, 200, dtype=np.int64),
                          np.array([-(2**63), 2**63 - 1, 0, -1, 0], dtype=np.int64)])
    (got,) = sort_plain([key], [key], [64], [True], source)
    assert np.array_equal(to_signed(got), np.sort(key))


def test_sort_by_several_keys_of_declared_widths(rng, source):
    n = 300
    group = rng.integers(0, 5, n)  # unsigned, 3 bits
    side = rng.integers(0, 2, n)  # one bit
    value = rng.integers(-1000, 1000, n)  # signed, 11 bits
    got = sort_plain([group, side, value], [group, side, value, np.arange(n)], [3, 1, 11],
                     [False, False, True], source)
    order = reference_order([group, side, value])
    for column, original in zip(got, [group, side, value, np.arange(n)], strict=True):
        assert np.array_equal(to_signed(column), original[order])


@pytest.mark.parametrize("case", ["all_equal", "sorted", "reversed"])
def test_sort_adversarial_orders(case, source):
    n = 129
    key = {"all_equal": np.full(n, 5), "sorted": np.arange(n), "reversed": np.arange(n)[::-1]}[case]
    got_key, got_index = sort_plain([key], [key, np.arange(n)], [16], [True], source)
    order = reference_order([key])
    assert np.array_equal(to_signed(got_key), key[order])
    assert np.array_equal(got_index, order.astype(U64))


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=0, max_size=60))
def test_sort_property(source, values):
    key = np.array(values, dtype=np.int64)
    got_key, got_index = sort_plain([key], [key, np.arange(len(key))], [32], [True], source)
    order = reference_order([key])
    assert np.array_equal(to_signed(got_key), key[order])
    assert np.array_equal(got_index, order.astype(U64))


def scan_reference(heads, values, op):
    out = np.zeros_like(values)
    current = values[0] if len(values) else 0
    for i, (head, value) in enumerate(zip(heads, values, strict=True)):
        if head or i == 0:
            current = value
        elif op == "sum":
            current = current + value
        elif op in ("min", "max"):
            current = (min if op == "min" else max)(current, value)
        out[i] = current
    return out


@pytest.mark.parametrize("op", ["copy", "sum", "min", "max"])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 6, 64, 129, 300])
def test_segmented_scan(op, n, rng, source):
    heads = (rng.random(n) < 0.2).astype(np.int64)
    values = rng.integers(-1000, 1000, n)
    other = rng.integers(0, 10, n)
    h0, h1 = shares_of(heads, rng)
    v0, v1 = shares_of(values, rng)
    o0, o1 = shares_of(other, rng)

    async def program(party, h, v, o):
        return await segmented_scan(party, h, [v, o], op)

    got_values, got_other = reconstruct(run_pair(program, (h0, v0, o0), (h1, v1, o1),
                                                 source=source))
    assert np.array_equal(to_signed(got_values), scan_reference(heads, values, op))
    assert np.array_equal(to_signed(got_other), scan_reference(heads, other, op))


def test_segmented_copy_over_long_segments(rng, source):
    """One head followed by thousands of rows: the copy reaches every row."""
    n = 5000
    heads = np.zeros(n, dtype=np.int64)
    heads[[0, 17, 4000]] = 1
    values = rng.integers(0, 1000, n)
    h0, h1 = shares_of(heads, rng)
    v0, v1 = shares_of(values, rng)

    async def program(party, h, v):
        before = party.accounting.cost()
        rounds, sent = before.rounds, before.bytes_sent
        (copied,) = await segmented_scan(party, h, [v], "copy")
        after = party.accounting.cost()
        return copied, after.rounds - rounds, after.bytes_sent - sent

    (got, rounds, sent), (other, _, _) = run_pair(program, (h0, v0), (h1, v1), source=source)
    assert np.array_equal(to_signed(got + other), scan_reference(heads, values, "copy"))
    # work-efficient: at most 2 ceil(log2 n) - 1 rounds and about 2n combinations of 24 bytes
    # (a Hillis-Steele scan sends 24 bytes per row on each of its 13 levels)
    assert rounds <= 2 * 13 - 1 and sent < 2.2 * n * 24
