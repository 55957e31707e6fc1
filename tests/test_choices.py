"""Comparisons through random 1-out-of-N OTs (mpc.protocols.choices), once per source of
correlations, against plaintext; and what each server sees of the other's values."""

import numpy as np
import pytest

from tests.support.harness import run_pair
from tests.support.parties import run_timed, two_parties
from tests.support.statistics import CHI2_LIMIT, two_sample_statistic
from twofold.mpc.errors import PeerAborted, ProtocolMismatch
from twofold.mpc.protocols.choices import (
    CARRY,
    CARRY_LEAF,
    EQUAL,
    EQUAL_LEAF,
    block_leaves,
    blocks,
    leaf_blocks,
    leaf_offers,
    offers,
    through_blocks,
)
from twofold.mpc.ring import U64

ONES = U64(2**64 - 1)


def operands(rng, n: int):
    """Server 0's and server 1's values: random, equal, complementary (a carry that runs
    through every bit, or stops one short) and extreme."""
    a = rng.integers(0, 2**64, n, dtype=U64, endpoint=False)
    b = rng.integers(0, 2**64, n, dtype=U64, endpoint=False)
    pick = rng.integers(0, 5, n)
    b = np.where(pick == 1, a, b)
    b = np.where(pick == 2, ~a, b)  # a + b = 2^64 - 1: no carry anywhere, one step from it
    b = np.where(pick == 3, ~a + U64(1), b)  # a + b = 2^64: a carry out of every block
    a[:4], b[:4] = [0, ONES, ONES, 2**63], [0, ONES, 1, 2**63]
    return a, b


def expected(rule, a, b, bits: int) -> np.ndarray:
    mask = ONES if bits == 64 else U64((1 << bits) - 1)
    a, b = a & mask, b & mask
    if rule is EQUAL:
        return (a == b).astype(np.uint8)
    total = a + b  # wraps at 2^64; below 64 bits the carry is bit `bits` of the sum
    return ((total < a) if bits == 64 else (total >> U64(bits)) & U64(1)).astype(np.uint8)


def each_way(protocol, ways, bits: int, a, b, source):
    """Both servers' shares from protocol(party, own, bits, way) for each way, server 0
    holding a and server 1 b."""
    async def all_ways(party, own):
        return [await protocol(party, own, bits, way) for way in ways]

    return run_pair(all_ways, (a,), (b,), source=source)


@pytest.mark.parametrize("bits", [1, 2, 6, 7, 11, 12, 63, 64])
def test_states_through_blocks_match_plaintext(bits, rng, source):
    a, b = operands(rng, 777)
    first, second = each_way(through_blocks, (CARRY, EQUAL), bits, a, b, source)
    for rule, share0, share1 in zip((CARRY, EQUAL), first, second, strict=True):
        assert share0.dtype == np.uint8 and set(np.unique(share0)) <= {0, 1}
        assert np.array_equal(share0 ^ share1, expected(rule, a, b, bits)), rule.name


def test_no_values_and_one_value(source):
    async def both(party, own):
        return [await through_blocks(party, own, 63, CARRY) for own in (own[:0], own)]

    (empty0, one0), (empty1, one1) = run_pair(
        both, (np.array([2**62], U64),), (np.array([2**62], U64),), source=source)
    assert empty0.size == empty1.size == 0
    assert (one0 ^ one1).tolist() == [1]


@pytest.mark.parametrize("bits", [1, 5, 6, 7, 13, 63, 64])
def test_block_outcomes_match_plaintext(bits, rng, source):
    a, b = operands(rng, 300)
    first, second = each_way(block_leaves, (CARRY_LEAF, EQUAL_LEAF), bits, a, b, source)
    for leaf, share0, share1 in zip((CARRY_LEAF, EQUAL_LEAF), first, second, strict=True):
        layout = leaf_blocks(bits, leaf)
        assert share0.shape == (len(layout), len(a)) and share0.dtype == np.uint8
        for row, (low, size) in enumerate(layout):
            mine, theirs = ((v >> U64(low)) & U64((1 << size) - 1) for v in (a, b))
            total = mine + theirs
            want = (total >> U64(size)) | ((total == U64((1 << size) - 1)).astype(U64) << U64(1)) \
                if leaf is CARRY_LEAF else (mine == theirs)
            assert np.array_equal(share0[row] ^ share1[row], want.astype(np.uint8)), (leaf, row)


def test_block_layouts_and_lists():
    assert blocks(63) == [(0, 6, False)] + [(6 + 5 * i, 5, True) for i in range(11)] + [
        (61, 2, True)]
    assert blocks(1) == [(0, 1, False)]
    assert leaf_blocks(63, CARRY_LEAF) == [(5 * i, 5) for i in range(12)] + [(60, 3)]
    assert leaf_blocks(64, EQUAL_LEAF) == [(6 * i, 6) for i in range(10)] + [(60, 4)]
    # a carry list: bit k of the sender's key 0b1_00101 (value 5, state share 1) offered
    # under d is the carry out of 5 + (k ^ d) & 31 + (1 ^ (k ^ d) >> 5)
    table = offers(CARRY, 5, True)
    for d in (0, 9, 63):
        word = int(table[(0b100101 << 6) | d])
        for k in range(64):
            entry = k ^ d
            assert word >> k & 1 == (5 + (entry & 31) + (1 ^ entry >> 5)) >> 5
    # a generate/propagate list: entry k (2 bits) of key 7 under d is for 7 + (k ^ d)
    table = leaf_offers(CARRY_LEAF, 5)
    for d in (0, 17, 31):
        word = int(table[(7 << 5) | d])
        for k in range(32):
            total = 7 + (k ^ d)
            assert word >> (2 * k) & 3 == (total >> 5) | (total == 31) << 1


@pytest.mark.parametrize("protocol", [
    lambda party, own: through_blocks(party, own, 63, CARRY),
    lambda party, own: block_leaves(party, own, 63, CARRY_LEAF),
    lambda party, own: block_leaves(party, own, 64, EQUAL_LEAF)], ids=["blocks", "carry", "eq"])
def test_what_each_server_receives_does_not_depend_on_the_values(protocol):
    """Every message of the protocol (the d of the receiver, the masked lists of the sender),
    for all-zero values and for random ones: the same distribution, byte by byte."""
    n = 1 << 14

    async def recorded(party, own):
        sent = []
        link = party.link
        send, exchange = link.send, link.exchange

        async def keep_sent(*arrays):
            sent.append([np.array(a) for a in arrays])
            await send(*arrays)

        async def keep_exchanged(*arrays, **options):
            sent.append([np.array(a) for a in arrays])
            return await exchange(*arrays, **options)

        link.send, link.exchange = keep_sent, keep_exchanged
        await protocol(party, own)
        return sent

    rng = np.random.default_rng(5)
    zeros = run_pair(recorded, (np.zeros(n, U64),), (np.zeros(n, U64),), source="ot")
    values = run_pair(recorded, *[(rng.integers(0, 2**64, n, dtype=U64, endpoint=False),)
                                  for _ in range(2)], source="ot")
    for server in (0, 1):
        assert len(zeros[server]) == len(values[server]) >= 2
        for message_z, message_v in zip(zeros[server], values[server], strict=True):
            for part_z, part_v in zip(message_z, message_v, strict=True):
                bytes_z, bytes_v = (part.view(np.uint8).ravel() for part in (part_z, part_v))
                assert bytes_z.shape == bytes_v.shape
                statistic = two_sample_statistic(bytes_z.astype(U64), bytes_v.astype(U64), 0)
                assert statistic < CHI2_LIMIT


def test_a_malformed_list_or_d_stops_the_comparison():
    """The compiled steps index by the peer's arrays: a d or a list of the wrong length ends
    the job with ProtocolMismatch on the server that got it (and the peer is told)."""
    n = 100
    own = np.arange(n, dtype=U64)

    async def honest(party):
        return await through_blocks(party, own, 63, CARRY)

    async def long_d(party):  # server 0 opens with its d for the first block
        await party.link.send(np.zeros(n + 5, np.uint8))
        return await party.link.recv()

    async def short_list(party):  # server 1 sends the first block's list, and server 0's d
        await party.link.recv()
        await party.link.send(np.zeros(8 * n - 8, np.uint8), np.zeros(n, np.uint8))
        return await party.link.recv()

    for program0, program1, victim in ((long_d, honest, 1), (honest, short_list, 0)):
        results, _ = run_timed(two_parties(program0, program1, timeout_s=30))
        assert isinstance(results[victim], ProtocolMismatch), results
        assert isinstance(results[1 - victim], PeerAborted), results
