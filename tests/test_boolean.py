"""Conversions, comparisons and multiplexer against numpy, once per source of correlations."""

import asyncio

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.harness import reconstruct, run_pair, shares_of, xor_shares_of
from twofold.mpc.protocols.boolean import (
    RIPPLE_ADDERS_FROM,
    RIPPLE_COMPARISONS_FROM,
    RIPPLE_FROM_OT,
    and_bits,
    and_monomials,
    arith_to_bool,
    bits_times,
    bits_to_arith,
    bool_to_arith,
    clamp,
    clamp_public,
    equal,
    flag_rows,
    greater_than,
    less_than,
    msb_bits,
    mux,
    plane_to_bits,
    to_planes,
)
from twofold.mpc.ring import U64

LIMIT = 2**62  # comparison operands: |x|, |y| < 2^62
EDGES = np.array([0, 1, -1, LIMIT - 1, -LIMIT, 2**40, -(2**40), 7], dtype=np.int64)


def run_on_shares(protocol, *plain, rng, source, xor=False):
    pairs = [(xor_shares_of if xor else shares_of)(values, rng) for values in plain]

    async def program(party, *shares):
        return await protocol(party, *shares)

    return run_pair(program, tuple(p[0] for p in pairs), tuple(p[1] for p in pairs), source=source)


@pytest.mark.parametrize("source", ["dealer", "prefetched"])  # with OT, trees stay binary
def test_and_monomials_match_numpy(rng, source):
    monomials = [[5, 2], [5, 4, 1], [5, 4, 3, 0], [5, 4, 3, 6], [0, 6], [1, 2, 3]]
    words = rng.integers(0, 2**64, (7, 3, 5), dtype=U64, endpoint=False)
    words[:, 0, 0] = 2**64 - 1  # all ones and all zeros among the inputs
    words[:, 0, 1] = 0
    made0, made1 = run_on_shares(lambda party, x: and_monomials(party, x, monomials), words,
                                 rng=rng, source=source, xor=True)
    for monomial, share0, share1 in zip(monomials, made0, made1, strict=True):
        assert np.array_equal(share0 ^ share1, np.bitwise_and.reduce(words[monomial], axis=0))


def test_bit_planes_round_trip(rng):
    for n in (0, 1, 63, 64, 65, 1000):
        words = rng.integers(0, 2**64, n, dtype=U64)
        planes = to_planes(words)
        rebuilt = sum((plane_to_bits(planes[j], n).astype(U64) << U64(j)) for j in range(64))
        assert np.array_equal(rebuilt, words) if n else planes.shape == (64, 0)


@pytest.mark.parametrize("n", [0, 1, 5, 130, 1024, 1025, RIPPLE_FROM_OT, RIPPLE_COMPARISONS_FROM])
# fan-in 4 up to 1,024 values (a dealer); carries ripple from RIPPLE_FROM_OT (OT) or
# RIPPLE_COMPARISONS_FROM (a dealer)
def test_comparisons_match_numpy(n, rng, source):
    x = rng.integers(-LIMIT, LIMIT, n, dtype=np.int64)
    y = np.where(rng.random(n) < 0.3, x, rng.integers(-LIMIT, LIMIT, n, dtype=np.int64))

    async def compare(party, a, b):
        return [await less_than(party, a, b), await greater_than(party, a, b),
                await equal(party, a, b)]

    lt, gt, eq = reconstruct(run_on_shares(compare, x, y, rng=rng, source=source))
    assert np.array_equal(lt, (x < y).astype(U64))
    assert np.array_equal(gt, (x > y).astype(U64))
    assert np.array_equal(eq, (x == y).astype(U64))


@pytest.mark.parametrize("copies", [1, RIPPLE_FROM_OT // len(EDGES) ** 2 + 1])  # a tree; blocks
def test_comparisons_on_edge_values(copies, rng, source):
    x, y = (np.tile(g.ravel(), copies) for g in np.meshgrid(EDGES, EDGES))

    async def compare(party, a, b):
        return [await less_than(party, a, b), await equal(party, a, b)]

    lt, eq = reconstruct(run_on_shares(compare, x, y, rng=rng, source=source))
    assert np.array_equal(lt, (x < y).astype(U64))
    assert np.array_equal(eq, (x == y).astype(U64))


def test_equality_on_the_whole_ring(rng, source):
    x = np.concatenate([rng.integers(0, 2**64, 200, dtype=U64),
                        np.array([0, 2**64 - 1, 2**63, 2**63 - 1], dtype=U64)])
    y = np.where(rng.random(len(x)) < 0.5, x,
                 x ^ (U64(1) << rng.integers(0, 64, len(x)).astype(U64)))
    got = reconstruct(run_on_shares(equal, x, y, rng=rng, source=source))
    assert np.array_equal(got, (x == y).astype(U64))


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.integers(-LIMIT, LIMIT - 1), st.integers(-LIMIT, LIMIT - 1)),
                min_size=1, max_size=30))
def test_less_than_property(source, pairs):
    x = np.array([p[0] for p in pairs], dtype=np.int64)
    y = np.array([p[1] for p in pairs], dtype=np.int64)
    got = reconstruct(run_on_shares(less_than, x, y, rng=np.random.default_rng(len(pairs)),
                                    source=source))
    assert np.array_equal(got, (x < y).astype(U64))


@pytest.mark.parametrize("bits, n", [(64, 300), (20, 300), (1, 300), (64, RIPPLE_ADDERS_FROM + 5),
                                     (33, RIPPLE_ADDERS_FROM)])  # ripple-carry from there
def test_a2b_and_b2a_round_trip(bits, n, rng, source):
    x = np.concatenate([rng.integers(0, 2**64, n, dtype=U64),
                        np.array([0, 2**64 - 1, 2**63], dtype=U64)])

    async def program(party, a):
        as_bits = await arith_to_bool(party, a, bits)
        return [as_bits, await bool_to_arith(party, as_bits)]

    (b0, back0), (b1, back1) = run_on_shares(program, x, rng=rng, source=source)
    low = x if bits == 64 else x & U64((1 << bits) - 1)
    assert np.array_equal(b0 ^ b1, low)
    assert np.array_equal(back0 + back1, low)


def test_bits_to_arith_and_and_bits(rng, source):
    for n in (0, 1, 77):
        x = rng.integers(0, 2, n).astype(np.uint8)
        y = rng.integers(0, 2, n).astype(np.uint8)
        x0, y0 = rng.integers(0, 2, n).astype(np.uint8), rng.integers(0, 2, n).astype(np.uint8)

        async def program(party, a, b):
            return [await bits_to_arith(party, a), await and_bits(party, a, b)]

        (arith0, and0), (arith1, and1) = run_pair(program, (x ^ x0, y ^ y0), (x0, y0),
                                                  source=source)
        assert np.array_equal(arith0 + arith1, x.astype(U64))
        assert np.array_equal(and0 ^ and1, x & y)


def test_mux_selects(rng, source):
    choice = rng.integers(0, 2, 50)
    a = rng.integers(-(2**63), 2**63 - 1, 50, dtype=np.int64)
    b = rng.integers(-(2**63), 2**63 - 1, 50, dtype=np.int64)
    got = reconstruct(run_on_shares(mux, choice, a, b, rng=rng, source=source))
    assert np.array_equal(got, np.where(choice == 1, a, b).view(U64))


def test_bits_times_values_in_one_round(rng, source):
    bits = rng.integers(0, 2, (2, 45)).astype(np.uint8)
    values = rng.integers(-(2**63), 2**63 - 1, (2, 45), dtype=np.int64)
    mask = rng.integers(0, 2, bits.shape).astype(np.uint8)
    value_shares = shares_of(values, rng)

    async def program(party, b, v):
        before = party.accounting.cost().rounds
        product = await bits_times(party, b, v)
        return product, party.accounting.cost().rounds - before

    (p0, rounds), (p1, _) = run_pair(program, (bits ^ mask, value_shares[0]),
                                     (mask, value_shares[1]), source=source)
    assert np.array_equal(p0 + p1, np.where(bits == 1, values, 0).view(U64)) and rounds == 1


def test_flag_rows_open_one_bit_per_flag_in_one_round(rng, source):
    """0/1 flags times k rows: random flags and extreme values, all-zero and all-one flags,
    and a length that is no multiple of 8 (the opened bits are packed)."""
    n = 45
    flags = rng.integers(0, 2, n).astype(U64)
    flags[:5], flags[5:10] = 0, 1
    values = rng.integers(-(2**63), 2**63 - 1, (3, n), dtype=np.int64)
    values[:, -4:] = EDGES[[2, 3, 4, 6]]
    flag_shares, value_shares = shares_of(flags, rng), shares_of(values, rng)

    async def program(party, f, v):
        before = party.accounting.cost().rounds, party.accounting.cost().bytes_sent
        product = await flag_rows(party, f, v)
        after = party.accounting.cost().rounds, party.accounting.cost().bytes_sent
        return product, after[0] - before[0], after[1] - before[1]

    (p0, rounds, sent), (p1, _, _) = run_pair(program, (flag_shares[0], value_shares[0]),
                                              (flag_shares[1], value_shares[1]), source=source)
    assert np.array_equal(p0 + p1, (flags[None, :] * values.view(U64)))
    assert rounds == 1 and sent < 8 * 3 * n + n // 8 + 200  # k words and a bit per column


@pytest.mark.parametrize("rows, n", [(0, 5), (2, 0), (0, 0)])
def test_flag_rows_of_no_rows_or_no_columns(rows, n, source):
    async def program(party):
        flags = party.public(np.ones(n, U64))
        return await flag_rows(party, flags, party.public(np.ones((rows, n), U64)))

    got0, got1 = run_pair(program, source=source)
    assert got0.shape == got1.shape == (rows, n)


def test_clamp_to_shared_bounds(rng, source):
    """Bounds per element, as training's residual bounds (equal bounds clamp to one value)."""
    x = np.concatenate([rng.integers(-2000, 2000, 40), EDGES[[0, 1, 2, 5, 6]]])
    low = rng.integers(-1000, 0, len(x))
    high = np.where(np.arange(len(x)) % 7 == 0, low, rng.integers(0, 1000, len(x)))
    got = reconstruct(run_on_shares(clamp, x, low, high, rng=rng, source=source))
    assert np.array_equal(got.view(np.int64), np.clip(x, low, high))


# public bounds as the servers' range checks use them: a decimal column's at 16 fractional
# bits, a wide one, 0/1 flags, one value, only negative, only positive, and the widest allowed
BOUNDS = np.array([(0, 10_000 << 16), (-(10**6 << 16), 10**6 << 16), (0, 1), (5, 5),
                   (-100, -3), (3, 100), (-(LIMIT - 1), LIMIT - 1), (-(2**63), 2**63 - 2)],
                  dtype=np.int64)


def adversarial_values(low: int, high: int) -> list[int]:
    """Values a modified owner client could upload against [low, high]: the bounds and their
    neighbours, 0 and +-1, both ends of the ring, and words 2^62 and 2^63 away from each
    bound (wrapped, as the ring does)."""
    values = [0, 1, -1, -(2**63), 2**63 - 1, LIMIT, -LIMIT, LIMIT - 1, 1 - LIMIT]
    for bound in (low, high):
        values += [bound + step for step in (-1, 0, 1)]
        values += [bound + sign * far + step for sign in (1, -1) for far in (LIMIT, 2**63)
                   for step in (-1, 0, 1)]
    return [(v + 2**63) % 2**64 - 2**63 for v in values]


def clamp_public_of(x, low, high, rng, source):
    shares = shares_of(x, rng)

    async def program(party, share):
        return await clamp_public(party, share, low, high)

    return reconstruct(run_pair(program, (shares[0],), (shares[1],), source=source))


def test_clamp_public_on_adversarial_values(rng, source):
    """Any word against public bounds per element, where x - bound may wrap the ring."""
    pairs = [(low, high, x) for low, high in BOUNDS.tolist()
             for x in adversarial_values(low, high)]
    low, high, x = (np.array(column, dtype=np.int64) for column in zip(*pairs, strict=True))
    got = clamp_public_of(x, low, high, rng, source)
    assert np.array_equal(got.view(np.int64), np.clip(x, low, high))


@pytest.mark.parametrize("n", [0, 1, 7, 1000, RIPPLE_COMPARISONS_FROM // 3 + 1])
# 3n msbs: fan-in 4 (dealer) below 342 values; by blocks (OT) from 683; ripples (dealer) from
# 43,691
def test_clamp_public_on_full_range_words(n, rng, source):
    x = rng.integers(0, 2**64, n, dtype=U64, endpoint=False).view(np.int64)
    x[::5] = rng.integers(-(2**20), 2**20, len(x[::5]))  # some inside the bounds
    low, high = BOUNDS[rng.integers(0, len(BOUNDS), n)].T
    got = clamp_public_of(x, low, high, rng, source)
    assert got.shape == (n,) and np.array_equal(got.view(np.int64), np.clip(x, low, high))


def test_clamp_public_with_one_pair_of_bounds_costs_the_rounds_it_states(rng, source):
    """Scalar bounds for a matrix of values; msb_bits of 3n values and two rounds more."""
    x = rng.integers(0, 2**64, (3, 11), dtype=U64, endpoint=False).view(np.int64)
    shares = shares_of(x, rng)

    async def program(party, share):
        before = party.accounting.cost().rounds
        await msb_bits(party, np.stack([share] * 3))
        msb_rounds = party.accounting.cost().rounds - before
        clamped = await clamp_public(party, share, -7, 1 << 40)
        return clamped, party.accounting.cost().rounds - before - msb_rounds, msb_rounds

    (got0, rounds, msb_rounds), (got1, _, _) = run_pair(program, (shares[0],), (shares[1],),
                                                         source=source)
    assert np.array_equal((got0 + got1).view(np.int64), np.clip(x, -7, 1 << 40))
    assert rounds == msb_rounds + 2


def test_clamp_public_refuses_bounds_it_cannot_compare():
    """Refused before any message: no party is needed to find out."""
    for low, high in ((1, 0), (0, 2**63 - 1)):
        with pytest.raises(ValueError, match="low <= high"):
            asyncio.run(clamp_public(None, np.ones(2, U64), low, high))
