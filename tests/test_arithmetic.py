"""Arithmetic protocols against numpy, over real sockets, once per source of correlations."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.harness import reconstruct, run_pair, shares_of
from twofold.mpc.protocols.arithmetic import (
    ONE_WAY_OPENING,
    fixed_matmul,
    fixed_mul,
    fixed_mul_public,
    matmul,
    mul,
    reveal,
    reveal_to,
    share_input,
    truncate,
)
from twofold.mpc.ring import U64, FixedPoint, to_signed

EDGES = np.array([0, 1, -1, 2**63 - 1, -(2**63), 2**62, -(2**62), 12345], dtype=np.int64)


def run_binary(protocol, x, y, rng, source):
    x0, x1 = shares_of(x, rng)
    y0, y1 = shares_of(y, rng)

    async def program(party, a, b):
        return await protocol(party, a, b)

    return reconstruct(run_pair(program, (x0, y0), (x1, y1), source=source))


@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_mul_matches_wrapping_product(n, rng, source):
    x = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64)
    y = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64)
    assert np.array_equal(run_binary(mul, x, y, rng, source), x.view(U64) * y.view(U64))


def test_mul_edge_values(rng, source):
    x, y = np.meshgrid(EDGES, EDGES)
    got = run_binary(mul, x.ravel(), y.ravel(), rng, source)
    assert np.array_equal(got, x.ravel().view(U64) * y.ravel().view(U64))


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=40), st.integers(0, 2**32))
def test_mul_property(source, values, seed):
    rng = np.random.default_rng(seed)
    x = np.array(values, dtype=np.int64)
    y = rng.permutation(x)
    assert np.array_equal(run_binary(mul, x, y, rng, source), x.view(U64) * y.view(U64))


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (5, 3, 2), (33, 17, 1), (1, 64, 9)])
def test_matmul_matches_numpy(m, k, n, rng, source):
    x = rng.integers(-(2**63), 2**63 - 1, (m, k), dtype=np.int64).view(U64)
    y = rng.integers(-(2**63), 2**63 - 1, (k, n), dtype=np.int64).view(U64)
    assert np.array_equal(run_binary(matmul, x, y, rng, source), np.matmul(x, y))


def test_matmul_refuses_mismatched_shapes(rng):
    with pytest.raises(ValueError, match="do not fit"):
        run_binary(matmul, np.zeros((2, 3), U64), np.zeros((4, 1), U64), rng, "dealer")


def test_truncation_error_is_below_one_ulp_and_unbiased(rng, source):
    limit = 2**62 - 1
    x = np.concatenate([rng.integers(-limit, limit, 20000, dtype=np.int64),
                        np.array([0, 1, -1, limit, -limit, 65535, -65536], dtype=np.int64)])
    x0, x1 = shares_of(x, rng)

    async def program(party, a):
        return await truncate(party, a, 16)

    got = to_signed(reconstruct(run_pair(program, (x0,), (x1,), source=source)))
    floor = x >> 16  # exact floor division, also for negative values
    assert np.all((got == floor) | (got == floor + 1))  # never fails badly
    error = (got - floor).astype(np.float64) - (x & 0xFFFF) / 2**16
    assert abs(error[:20000].mean()) < 0.02  # stochastic rounding: unbiased


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("frac_bits", [8, 16, 24])
def test_fixed_point_multiplication(frac_bits, fused, rng, source):
    """mul then truncate, and fixed_mul's one correlation for both: the floor of the exact
    product or one ulp above, never anything else, up to the range limit."""
    fixed = FixedPoint(frac_bits)
    bound = np.sqrt(fixed.max_product) * 0.99
    a = np.concatenate([rng.uniform(-bound, bound, 500), [bound, -bound, 0.0]])
    b = np.concatenate([rng.uniform(-bound, bound, 500), [bound, bound, -bound]])
    a_enc, b_enc = fixed.encode(a), fixed.encode(b)
    x0, x1 = shares_of(a_enc, rng)
    y0, y1 = shares_of(b_enc, rng)

    async def program(party, x, y):
        party.fixed = fixed
        rounds = party.accounting.cost().rounds
        product = (await fixed_mul(party, x, y) if fused
                   else await truncate(party, await mul(party, x, y), frac_bits))
        return product, party.accounting.cost().rounds - rounds

    (got0, rounds), (got1, _) = run_pair(program, (x0, y0), (x1, y1), source=source)
    got = to_signed(got0 + got1)
    exact = [(int(p) * int(q)) >> frac_bits
             for p, q in zip(to_signed(a_enc), to_signed(b_enc), strict=True)]
    # floor or one ulp above
    assert all(int(g) - e in (0, 1) for g, e in zip(got, exact, strict=True))
    assert rounds == 2


@pytest.mark.parametrize("fused", [False, True])
def test_large_truncations_open_to_server_0_only(fused, rng, source):
    """From ONE_WAY_OPENING elements on, server 1 sends its share of c and server 0 answers
    with msb(c) as bits: still the floor or one above, with one round more and, for that
    step, 8 bytes from server 1 and 1 bit from server 0 per value (public sizes only)."""
    n = ONE_WAY_OPENING + 3
    fixed = FixedPoint()
    bound = np.sqrt(fixed.max_product) * 0.99
    a = np.concatenate([rng.uniform(-bound, bound, n - 2), [bound, -bound]])
    b = np.concatenate([rng.uniform(-bound, bound, n - 2), [-bound, -bound]])
    a_enc, b_enc = fixed.encode(a), fixed.encode(b)
    x0, x1 = shares_of(a_enc, rng)
    y0, y1 = shares_of(b_enc, rng)

    async def program(party, x, y):
        product = None if fused else await mul(party, x, y)
        before = dataclasses.replace(party.accounting.cost())
        result = await (fixed_mul(party, x, y) if fused else truncate(party, product))
        after = party.accounting.cost()
        return result, after.rounds - before.rounds, after.bytes_sent - before.bytes_sent

    (got0, rounds0, sent0), (got1, rounds1, sent1) = run_pair(program, (x0, y0), (x1, y1),
                                                              source=source)
    got = to_signed(got0 + got1)
    exact = np.array([(int(p) * int(q)) >> fixed.frac_bits
                      for p, q in zip(to_signed(a_enc), to_signed(b_enc), strict=True)],
                     dtype=object)
    assert all(int(g) - e in (0, 1) for g, e in zip(got, exact, strict=True))
    opening = 16 * n if fused else 0  # fixed_mul's first round: d and e from each server
    assert rounds0 == rounds1 == (3 if fused else 2)
    assert 0 < sent1 - opening - 8 * n < 200  # a header
    assert 0 < sent0 - opening - (n + 7) // 8 < 200


def test_fused_fixed_point_product_is_unbiased(rng, source):
    """Stochastic rounding of the product's dropped bits: the mean error is zero."""
    fixed = FixedPoint()
    a_enc = rng.integers(-2**20, 2**20, 20000).astype(np.int64)
    b_enc = rng.integers(-2**20, 2**20, 20000).astype(np.int64)
    pairs = [shares_of(v.view(U64), rng) for v in (a_enc, b_enc)]

    async def program(party, x, y):
        return await fixed_mul(party, x, y)

    got = to_signed(reconstruct(run_pair(program, tuple(p[0] for p in pairs),
                                         tuple(p[1] for p in pairs), source=source)))
    exact = a_enc.astype(object) * b_enc.astype(object)
    error = np.array([int(g) - e / 2**fixed.frac_bits for g, e in zip(got, exact, strict=True)],
                     float)
    assert np.all((error > -1) & (error < 1)) and abs(error.mean()) < 0.02


def test_fixed_mul_and_matmul_default_precision(rng, source):
    fixed = FixedPoint()
    a = rng.uniform(-100, 100, (20, 8))
    w = rng.uniform(-1, 1, (8, 1))
    x0, x1 = shares_of(fixed.encode(a), rng)
    w0, w1 = shares_of(fixed.encode(w), rng)

    async def program(party, x, weights):
        return [await fixed_matmul(party, x, weights), await fixed_mul(party, x, x)]

    product, square = reconstruct(run_pair(program, (x0, w0), (x1, w1), source=source))
    assert np.allclose(fixed.decode(product), a @ w, atol=8 * 2.0**-16 * 10)
    assert np.allclose(fixed.decode(square), a * a, atol=2 * 2.0**-16)


def test_share_input_and_reveals(rng, source):
    values = rng.integers(-1000, 1000, 9, dtype=np.int64).view(U64)

    async def program(party, plain):
        shared = await share_input(party, 1, plain, shape=(9,))
        return [await reveal(party, shared), await reveal_to(party, shared, 0)]

    (both0, only0), (both1, only1) = run_pair(program, (None,), (values,), source=source)
    assert np.array_equal(both0, values) and np.array_equal(both1, values)
    assert np.array_equal(only0, values) and only1 is None


@pytest.mark.parametrize("value", [-2.5, 1 / 1000, 1 / 3, 1e-6])
def test_fixed_mul_by_public_scalar(rng, value, source):
    """Within 2 ulps of the exact product: 1/1000 encoded with 16 bits was 66/65536, 0.8% off,
    and 1e-6 was 0."""
    fixed = FixedPoint()
    a = rng.uniform(-1000, 1000, 100)
    x0, x1 = shares_of(fixed.encode(a), rng)

    async def program(party, x):
        return await fixed_mul_public(party, x, value, bound=1000)

    got = fixed.decode(reconstruct(run_pair(program, (x0,), (x1,), source=source)))
    exact = fixed.decode(fixed.encode(a)) * value
    assert np.max(np.abs(got - exact)) <= 2 * 2.0**-16
