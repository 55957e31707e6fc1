"""Dealer correlations hold, and the dealer never serves a correlation twice or to the wrong
server."""

import asyncio

import numpy as np
import pytest
import zmq.asyncio

from tests.support.correlation_checks import MASK_FIRST, PARAMS, check
from tests.support.harness import keypair
from twofold.mpc.accounting import Accounting
from twofold.mpc.correlations import KINDS, CorrelationError
from twofold.mpc.dealer import Dealer, DealerSource, connect_dealer
from twofold.mpc.errors import DealerError
from twofold.mpc.fisher_yates import shuffled_range
from twofold.mpc.prg import SHUFFLE_FROM, Prg, fresh_key


def correlation(kind, params, keys, seq, mask=None):
    """Both parties' finished correlation number seq, through the same code the dealer and
    servers run; `mask`: the number of the session's latest row mask."""
    spec = KINDS[kind]
    own = [spec.own(p, Prg(keys[p], seq), params) for p in (0, 1)]
    correction = spec.dealer_correction(keys, seq, params, mask)
    receiver = spec.receiver(params)
    return [spec.assemble(p, own[p], correction if p == receiver else [], params)
            for p in (0, 1)]


def test_every_kind_is_covered():
    assert all(PARAMS[kind] for kind in KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_correlations_hold(kind):
    keys = (fresh_key(), fresh_key())
    mask = None
    if kind in MASK_FIRST:  # made as correlation 2, just before
        mask = [share for (share,) in correlation("row_mask", MASK_FIRST[kind], keys, 2)]
    for params in PARAMS[kind]:
        check(kind, params, *correlation(kind, params, keys, 3, 2 if mask else None), mask=mask)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_parts_are_named_tuples_of_arrays(kind):
    """What a party receives for one request names its arrays (the kind's Part, or one type
    per role where the parties receive different things)."""
    keys = (fresh_key(), fresh_key())
    for part in correlation(kind, PARAMS[kind][0], keys, 3, 2 if kind in MASK_FIRST else None):
        assert part._fields and all(isinstance(array, np.ndarray) for array in part)


def test_streams_differ_by_key_and_by_sequence_number():
    key = fresh_key()
    assert not np.array_equal(Prg(key, 0).words(4), Prg(key, 1).words(4))
    assert not np.array_equal(Prg(key, 0).words(4), Prg(fresh_key(), 0).words(4))
    assert np.array_equal(Prg(key, 5).words(4), Prg(key, 5).words(4))


@pytest.mark.parametrize("count", [0, 1, 2, 5, 1000, SHUFFLE_FROM - 1, SHUFFLE_FROM, 65537])
def test_permutations_are_permutations_and_follow_the_stream(count):
    key = fresh_key()
    perm = Prg(key, 7).permutation(count)
    assert perm.dtype == np.int64 and np.array_equal(np.sort(perm), np.arange(count))
    assert np.array_equal(perm, Prg(key, 7).permutation(count))  # the dealer's = the server's


@pytest.mark.parametrize("permute", [lambda prg: prg.permutation(4),
                                     lambda prg: shuffled_range(prg.words(4))])
def test_permutations_are_uniform(permute):
    """All 24 orders of 4 elements, 24,000 draws, by sorting keys and by the shuffle: a
    chi-square test at the 0.1% level (23 degrees of freedom: 49.7), and each element's
    position uniform."""
    key = fresh_key()
    draws = np.array([permute(Prg(key, seq)) for seq in range(24000)])
    _, counts = np.unique(draws, axis=0, return_counts=True)
    assert len(counts) == 24
    assert ((counts - 1000.0) ** 2 / 1000.0).sum() < 49.7
    for position in range(4):
        assert np.all(np.abs(np.bincount(draws[:, position], minlength=4) - 6000) < 400)


def test_shuffle_targets_are_exact_multiply_highs():
    """j_i = floor(u_i (i + 1) / 2^64), checked with Python integers at the extremes."""
    words = np.array([0, 2**64 - 1, 2**63, 12345678901234567890, 2**64 - 1], dtype=np.uint64)
    swaps = [int(u) * (i + 1) >> 64 for i, u in enumerate(words.tolist())]
    order = list(range(len(words)))
    for i in range(len(words) - 1, 0, -1):
        order[i], order[swaps[i]] = order[swaps[i]], order[i]
    assert shuffled_range(words).tolist() == order


async def with_dealer(body, timeout_s=2.0):
    dealer_keys, keys0, keys1 = keypair(), keypair(), keypair()
    dealer = Dealer(dealer_keys, (keys0.public, keys1.public), "tcp://127.0.0.1:*")
    ready = asyncio.Event()
    task = asyncio.create_task(dealer.serve(ready))
    await ready.wait()
    context = zmq.asyncio.Context()
    sockets = []

    async def source(keys, party, job="job-1"):
        socket = await connect_dealer(context, keys, dealer_keys.public, dealer.address)
        sockets.append(socket)
        return DealerSource(socket, party, job, Accounting(), timeout_s)

    try:
        return await body(source, (keys0, keys1))
    finally:
        for socket in sockets:
            socket.close(0)
        context.term()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def get(seq, kind, params):
    return {"action": "get", "requests": [[seq, kind, params]]}


def test_dealer_refuses_to_serve_a_correlation_twice():
    async def body(source, keys):
        party1 = await source(keys[1], 1)
        await party1.open()
        await party1.beaver_triples([4])
        party1._seq = 0  # a buggy or malicious server asking again
        with pytest.raises(DealerError, match="already served"):
            await party1.beaver_triples([4])
        with pytest.raises(DealerError, match="already served"):  # twice in one batch
            await party1._call({"action": "get",
                                "requests": [[7, "beaver_triples", {"shape": [2]}]] * 2})

    asyncio.run(with_dealer(body))


def test_dealer_refuses_a_second_open_of_the_same_job():
    async def body(source, keys):
        first = await source(keys[0], 0)
        await first.open()
        again = await source(keys[0], 0)
        with pytest.raises(DealerError, match="already opened"):
            await again.open()

    asyncio.run(with_dealer(body))


def test_dealer_refuses_corrections_for_the_other_server():
    async def body(source, keys):
        party0 = await source(keys[0], 0)
        await party0.open()
        with pytest.raises(DealerError, match="not the receiver"):
            await party0._call(get(0, "beaver_triples", {"shape": [3]}))

    asyncio.run(with_dealer(body))


def test_dealer_refuses_oversized_and_malformed_requests():
    async def body(source, keys):
        party1 = await source(keys[1], 1)
        await party1.open()
        with pytest.raises(CorrelationError, match="exceeds"):
            await party1.beaver_triples([1 << 20, 1 << 20])  # refused before expanding anything
        with pytest.raises(DealerError, match="exceeds"):
            await party1._call(get(98, "beaver_triples", {"shape": [1 << 20, 1 << 20]}))
        with pytest.raises(DealerError):
            await party1._call(get(99, "nonsense", {}))
        with pytest.raises(DealerError, match="a batch holds"):
            await party1._call({"action": "get", "requests": []})
        for monomials in ([], [[0]], [[0, 0]], [[0, 8]], [[0, 1, 2, 3, 4]], [[True, 1]],
                          [[0, 1]] * 9, "01", [[0, "1"]]):
            with pytest.raises(DealerError, match="monomials"):
                await party1._call(get(100, "and_monomials", {"shape": [4],
                                                              "monomials": monomials}))

    asyncio.run(with_dealer(body))


def test_dealer_refuses_masked_products_without_a_fitting_row_mask():
    async def body(source, keys):
        party1 = await source(keys[1], 1)
        await party1.open()
        with pytest.raises(DealerError, match="row mask"):
            await party1._call(get(0, "masked_products", {"rows": [0], "columns": 2}))
        await party1._call(get(1, "row_mask", {"rows": 4, "columns": 2}))
        for params in ({"rows": [4], "columns": 2}, {"rows": [0], "columns": 3}):
            with pytest.raises(DealerError, match="row mask"):
                await party1._call(get(2, "masked_products", params))
        _, (product, product_back) = await party1._call(
            get(3, "masked_products", {"rows": [3, 0, 3], "columns": 2}))
        assert product.shape == (3,) and product_back.shape == (2,)

    asyncio.run(with_dealer(body))


def test_dealer_ignores_unregistered_keys():
    async def body(source, keys):
        stranger = await source(keypair(), 1)
        with pytest.raises(DealerError, match="public key"):
            await stranger.open()

    asyncio.run(with_dealer(body, timeout_s=1.0))


def test_large_masked_products_are_split_into_messages_the_dealer_accepts(rng):
    """Batches of 8,000 rows: each request's header is tens of kilobytes, so a producer batch
    of them spans several messages."""
    from tests.support.harness import run_pair

    plan = [("masked_products", {"rows": rng.integers(0, 70000, 8000).tolist(), "columns": 3})
            for _ in range(5)]

    async def program(party):
        mask = await party.corr.row_mask(70000, 3)
        party.corr.prefetch(plan)
        return mask, [await party.corr.get(kind, **params) for kind, params in plan]

    (mask0, made0), (mask1, made1) = run_pair(program, timeout_s=60)
    for (kind, params), part0, part1 in zip(plan, made0, made1, strict=True):
        check(kind, params, part0, part1, mask=(mask0, mask1))
