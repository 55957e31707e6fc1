"""OT mode: the servers make every correlation between themselves. Each kind is checked on
both servers' parts; the building blocks (base OTs, extension, switching network) against
their definitions; and nothing is reused, within a job or across jobs."""

import asyncio
import itertools

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.support.correlation_checks import MASK_FIRST, PARAMS, check
from tests.support.harness import run_pair
from twofold.mpc.correlations import KINDS
from twofold.mpc.errors import ProtocolMismatch
from twofold.mpc.ot.base import base_ots
from twofold.mpc.ot.benes import _messages, _Wires, apply_plain, network
from twofold.mpc.ot.extension import PAD_BLOCK_ROWS, PadHash, setup
from twofold.mpc.ot.kernels import receiver_products, sender_products, transpose_rows
from twofold.mpc.ot.multiply import _operand
from twofold.mpc.prg import Prg
from twofold.mpc.ring import U64


# and_monomials is the dealer's alone: with OT, AND trees stay binary (cheap_ands is False)
@pytest.mark.parametrize("kind", sorted(name for name, kind in KINDS.items()
                                        if not kind.dealer_only))
def test_every_kind_made_by_ot_holds(kind):
    async def program(party):
        mask = await party.corr.row_mask(**MASK_FIRST[kind]) if kind in MASK_FIRST else None
        return mask, [await party.corr.get(kind, **params) for params in PARAMS[kind]]

    (mask0, made0), (mask1, made1) = run_pair(program, source="ot")
    for params, part0, part1 in zip(PARAMS[kind], made0, made1, strict=True):
        check(kind, params, part0, part1, mask=(mask0, mask1))
        assert part0._fields and part1._fields  # named tuples, as the dealer's parts


def test_large_requests_are_made_in_chunks():
    """Requests bigger than one chunk of pads, and than the first extension batches."""
    requests = [("beaver_triples", {"shape": [40000]}), ("and_triples", {"shape": [40000]}),
                ("truncation_pairs", {"shape": [40000], "frac_bits": 16}),
                ("permutation_masks", {"n": 3000, "columns": "ax", "permuter": 0})]

    async def program(party):
        return [await party.corr.get(kind, **params) for kind, params in requests]

    made0, made1 = run_pair(program, source="ot", timeout_s=60)
    for (kind, params), part0, part1 in zip(requests, made0, made1, strict=True):
        check(kind, params, part0, part1)


def test_base_ots_deliver_the_chosen_message_only():
    count = 40

    async def program(party):
        prg = Prg.fresh()
        pairs = [(prg.random_bytes(16).tobytes(), prg.random_bytes(16).tobytes())
                 for _ in range(count)]
        choices = prg.bits(count).tolist()
        got = await base_ots(party.link.channel("ot-correlate"), pairs, choices)
        return pairs, choices, got

    (pairs0, choices0, got0), (pairs1, choices1, got1) = run_pair(program)
    for pairs, choices, got in ((pairs0, choices1, got1), (pairs1, choices0, got0)):
        assert got == [pair[choice] for pair, choice in zip(pairs, choices, strict=True)]
        assert all(g != pair[1 - c] for pair, c, g in zip(pairs, choices, got, strict=True))


def test_extension_gives_correlated_ots_with_a_secret_delta():
    async def program(party):
        sender, receiver = await setup(party.link.channel("ot-correlate"), Prg.fresh())
        channel = party.link.channel("ot-extend-0")
        batches = []
        for words in (1, 3, 3, 256, 256):  # a repeated length reuses the leaves' layout
            if party.id == 1:
                message, rows, choices = receiver.extend(words)
                await channel.send(message)
                batches.append((rows, choices))
            else:
                (message,) = await channel.recv()
                batches.append(sender.extend(message))
        return sender.delta, batches

    (delta0, sent), (_, received) = run_pair(program)
    for q, (t, choices) in zip(sent, received, strict=True):
        assert np.array_equal(q, t ^ (choices.astype(U64)[:, None] * delta0[None, :]))
    choices = np.concatenate([c for _, c in received])
    assert 0.45 < choices.mean() < 0.55 and len(choices) == 64 * 519
    assert not (np.concatenate(sent) == delta0).all(axis=1).any()


@pytest.mark.parametrize("words", [1, 31, 32, 33, 100])
def test_bit_transpose_matches_numpy(words):
    """transpose_rows against unpackbits/packbits, on padded (strided) rows as the extension
    passes them and on lengths around its lane count."""
    padded = Prg.fresh().words((128, words + 8))
    rows = padded[:, :words]
    out = np.empty((64 * words, 2), U64)
    transpose_rows(rows, out)
    bits = np.unpackbits(rows.copy().view(np.uint8), axis=1, bitorder="little")  # (128, m)
    expected = np.ascontiguousarray(np.packbits(bits.T, axis=1, bitorder="little")).view(U64)
    assert np.array_equal(out, expected)


def _aes(key: bytes, blocks: np.ndarray) -> np.ndarray:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return np.frombuffer(encryptor.update(blocks.tobytes()), U64).reshape(-1, 2)


@pytest.mark.parametrize("words", [1, 2, 3])
def test_pads_are_the_tweakable_hash_of_each_row(words):
    """PadHash against H(i, x) = pi(pi(x) ^ i) ^ pi(x) written out row by row: pads that both
    servers compute alike but wrongly (a lost tweak, a block computed twice) would pass every
    correlation check and still break the OTs. Rows span several of the hash's blocks; Delta
    is one for all rows or one per row (stored COTs)."""
    prg, key = Prg.fresh(), bytes(range(16))
    count, first, sender = 3 * PAD_BLOCK_ROWS // 2 + 7, 1000, 1
    rows = prg.words((count, 2))
    for delta in (None, prg.words(2), prg.words((count, 2))):
        flipped = rows if delta is None else rows ^ delta
        permuted = _aes(key, flipped)
        expected = np.empty((count, 2 * (-(-words // 2))), U64)
        for block in range(expected.shape[1] // 2):
            tweak = np.stack([np.arange(first, first + count, dtype=U64),
                              np.full(count, block | sender << 32, U64)], axis=1)
            expected[:, 2 * block:2 * block + 2] = _aes(key, permuted ^ tweak) ^ permuted
        got = PadHash(key).pads(rows, first, sender, words, delta)
        assert np.array_equal(got, expected[:, :words])


@pytest.mark.parametrize("correlation_shape", [(), (5, 1, 3), (5, 7, 3), (1, 7, 1)])
def test_product_kernels_match_the_formulas(correlation_shape):
    """The compiled product steps against numpy, with broadcast operands and scalings: a
    slip here would give both servers consistent but wrong shares."""
    rng = np.random.default_rng(5)
    shape, shifts = (5, 7, 3), rng.integers(0, 64, 7).astype(np.uint64)
    pad0, pad1, pad, theirs = (rng.integers(0, 2**64, shape, dtype=np.uint64) for _ in range(4))
    correlation = rng.integers(0, 2**64, correlation_shape, dtype=np.uint64)
    offset = rng.integers(0, 2**64, (5, 7, 1), dtype=np.uint64)
    choices = rng.integers(0, 2, 35, dtype=np.uint8)
    scale = shifts[None, :, None]
    expected_tau, expected_mine = pad0 - pad1 + correlation, (offset - pad0) << scale
    expected_got = (pad + choices.reshape(5, 7, 1) * theirs) << scale
    sender_products(pad0, pad1, _operand(correlation, shape), _operand(offset, shape), shifts)
    receiver_products(pad, choices, theirs, shifts)
    assert np.array_equal(pad1, expected_tau) and np.array_equal(pad0, expected_mine)
    assert np.array_equal(pad, expected_got)


def _same_layout(one, other) -> bool:
    return np.array_equal(one.at, other.at) and len(one.ops) == len(other.ops) and all(
        a[0] == b[0] and all(np.array_equal(x, y) for x, y in zip(a[1:], b[1:], strict=True))
        for a, b in zip(one.ops, other.ops, strict=True))


@pytest.mark.parametrize("n", range(9))
def test_switching_network_routes_every_permutation_of_few_wires(n):
    values = np.arange(100, 100 + n, dtype=np.uint64)
    helper = network(np.arange(n), routing=False)  # the helper's view, from n alone
    for perm in itertools.permutations(range(n)):
        net = network(np.array(perm, np.int64))
        assert _same_layout(net, helper)
        assert np.array_equal(apply_plain(values, net), values[list(perm)])


@pytest.mark.parametrize("n", [9, 13, 100, 127, 128, 129, 1000, 1024, 1025, 4097])
def test_switching_network_routes_random_permutations_of_any_size(n):
    prg = Prg.fresh()
    perms = [prg.permutation(n) for _ in range(5)] + [np.arange(n), np.arange(n)[::-1]]
    values = prg.words(n)
    for perm in perms:
        assert np.array_equal(apply_plain(values, network(perm)), values[perm])
    # n log2 n - n + 1 switches at powers of two; a Benes network padded to the next power of
    # two has (2 log2 N - 1) N / 2 (up to twice as many for n just above one)
    switches = network(perms[0]).switches
    padded = 1 << (n - 1).bit_length()
    assert switches <= (2 * padded.bit_length() - 3) * padded // 2
    if n & (n - 1) == 0:
        assert switches == n * (n.bit_length() - 1) - n + 1


@pytest.mark.parametrize("limit", [1, 3, 50, 10**6])
def test_switch_messages_split_anywhere_still_apply_the_network(limit):
    """Messages of at most `limit` switches, moves kept between the switches they separate
    (large shuffles are split; the tests' own sizes fit in one message)."""
    prg = Prg.fresh()
    perm = prg.permutation(100)
    net, values = network(perm), prg.words(100)
    wires, following = _Wires(values.reshape(1, -1).copy()), 0
    for ops, switches in _messages(net, limit):
        assert switches.start == following and switches.stop - switches.start <= limit
        following = switches.stop
        for part, _ in wires.runs(ops, switches.start):
            for s in np.flatnonzero(net.bits[part]) + part.start:
                row, a = wires.values[0], net.at[s]
                row[a], row[a + 1] = row[a + 1], row[a]
    assert following == net.switches
    assert np.array_equal(wires.values[0], values[perm])


def test_consecutive_correlations_use_disjoint_ots():
    async def program(party):
        pool_rows = []
        for _ in range(3):
            await party.corr.beaver_triples([10])
            cots = await party.corr.pool.take(50, 50)
            pool_rows.append(np.concatenate([cots[0].rows, cots[1].rows]))
        return pool_rows

    for rows in run_pair(program, source="ot"):
        every = np.concatenate(rows)
        assert len(np.unique(every, axis=0)) == len(every)


def test_every_job_starts_from_fresh_base_ots_and_keys():
    async def program(party):
        source = party.corr
        cots = await source.pool.take(64, 64)
        return source.pool.sending.extension.delta.copy(), cots[0].rows, cots[1].rows

    first, second = run_pair(program, source="ot"), run_pair(program, source="ot")
    for server in (0, 1):
        delta_a, sent_a, received_a = first[server]
        delta_b, sent_b, received_b = second[server]
        assert not np.array_equal(delta_a, delta_b)
        assert not (sent_a[:, None, :] == sent_b[None, :, :]).all(axis=2).any()
        assert not (received_a[:, None, :] == received_b[None, :, :]).all(axis=2).any()


@pytest.mark.parametrize("source", ["dealer", "ot"])
def test_prefetched_plan_is_made_before_the_run_and_within_budget(source):
    """prefetch + produced() makes a whole plan ahead; then the run waits for nothing. With a
    small budget the producer stops ahead of use instead of making everything."""
    plan = [("beaver_triples", {"shape": [3000]}), ("and_triples", {"shape": [500]}),
            ("truncation_pairs", {"shape": [2000], "frac_bits": 16})] * 3

    async def program(party):
        source = party.corr
        source.prefetch(plan)
        await source.produced()
        assert all(pending.value.done() for pending in source._announced)
        made = [await source.get(kind, **params) for kind, params in plan]
        source.budget_elements = 10000
        source.prefetch(plan)
        await asyncio.sleep(0.5)
        ahead = sum(pending.value.done() for pending in source._announced)
        made += [await source.get(kind, **params) for kind, params in plan]
        return made, ahead

    (made0, ahead0), (made1, ahead1) = run_pair(program, source=source)
    for (kind, params), part0, part1 in zip(plan * 2, made0, made1, strict=True):
        check(kind, params, part0, part1)
    assert 1 <= ahead0 < len(plan) and 1 <= ahead1 < len(plan)


def test_a_budget_smaller_than_the_groups_made_ahead_does_not_stall_a_run():
    """Groups make later requests early: with a budget below what they hold, the request a
    run waits for is still made (no deadlock), and every part holds."""
    plan = [("beaver_triples", {"shape": [3000]}), ("and_triples", {"shape": [500]}),
            ("truncation_pairs", {"shape": [2000], "frac_bits": 16})] * 3

    async def run(party):  # in order, as a protocol asks
        return [await party.corr.get(kind, **params) for kind, params in plan]

    async def program(party):
        party.corr.budget_elements = 1000
        party.corr.prefetch(plan)
        return await asyncio.wait_for(run(party), 30)

    made0, made1 = run_pair(program, source="ot")
    for (kind, params), part0, part1 in zip(plan, made0, made1, strict=True):
        check(kind, params, part0, part1)


def test_announcing_what_is_already_announced_checks_it_and_adds_the_rest():
    """A loop that prefetches its own requests inside a run a caller prefetched whole: the
    overlap is checked, not made twice; a different request is a mismatch."""
    outer = [("beaver_triples", {"shape": [5]}), ("and_triples", {"shape": [2]})]
    inner = [("and_triples", {"shape": [2]}), ("dabits", {"shape": [9]})]

    async def program(party):
        source = party.corr
        source.prefetch(outer)
        await source.get("beaver_triples", shape=[5])
        source.prefetch(inner)
        announced = [(p.kind, p.params) for p in source._announced]
        with pytest.raises(ProtocolMismatch):
            source.prefetch([("beaver_triples", {"shape": [2]})])
        made = [await source.get(kind, **params) for kind, params in inner]
        return announced, made

    (announced, made0), (_, made1) = run_pair(program)
    assert announced == inner
    for (kind, params), part0, part1 in zip(inner, made0, made1, strict=True):
        check(kind, params, part0, part1)


def test_requests_announced_together_are_made_together_and_each_holds():
    """A plan of small requests over several iterations (as a training announces): those of
    one kind and parameters in a window are made as one request (windows end at a row mask;
    what cannot be merged is made alone), and every part is the correlation it would be
    made alone."""
    def iteration(t):
        return [("beaver_triples", {"shape": [50]}),
                ("truncation_pairs", {"shape": [60], "frac_bits": 16}),
                ("one_of_n", {"shape": [70], "entries": 64, "sender": t % 2, "width": 1}),
                ("masked_products", {"rows": [t, 8, 8, 3], "columns": 5}),
                ("and_triples", {"shape": [3]}), ("dabits", {"shape": [7]}),
                ("bit_triples", {"shape": [9]}),
                ("edabits", {"shape": [4]}), ("truncated_triples", {"shape": [6], "frac_bits": 16}),
                ("beaver_triples", {"shape": [3, 7]})]  # not 1-d: made alone
    plan = [request for t in range(3) for request in iteration(t)]
    plan += [("row_mask", {"rows": 9, "columns": 5}), ("matrix_triples", {"dims": [2, 3, 4]})]
    plan += [request for t in range(3, 6) for request in iteration(t)]

    async def program(party):
        first_mask = await party.corr.row_mask(9, 5)
        party.corr.prefetch(plan)
        made = [await party.corr.get(kind, **params) for kind, params in plan]
        return first_mask, made, party.corr.cost_report()

    (first0, made0, costs0), (first1, made1, costs1) = run_pair(program, source="ot")
    mask = (first0, first1)
    for (kind, params), part0, part1 in zip(plan, made0, made1, strict=True):
        if kind == "row_mask":
            mask = (part0[0], part1[0])
        check(kind, params, part0, part1, mask=mask)
    requests = {kind: cost["requests"] for kind, cost in costs0.items()}
    assert requests == {kind: cost["requests"] for kind, cost in costs1.items()}
    # one per window of each merged kind: before and after the row mask; 1-d beavers merged,
    # the 2-d ones alone, one_of_n in two groups per window (sender 0 and 1)
    assert requests == {"beaver_triples": 2 + 6, "truncation_pairs": 2, "one_of_n": 4,
                        "masked_products": 2, "and_triples": 2, "dabits": 2, "bit_triples": 2,
                        "edabits": 2, "truncated_triples": 2, "row_mask": 2,
                        "matrix_triples": 1}
