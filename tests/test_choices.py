"""Comparisons through random 1-out-of-N OTs (mpc.protocols.choices), once per source of
correlations, against plaintext; and what each server sees of the other's values."""

import numpy as np
import pytest

from mpc.protocols.choices import CARRY, EQUAL, blocks, offers, permuted, through_blocks
from tests.harness import run_pair
from tests.test_security import CHI2_LIMIT, two_sample_statistic

U64 = np.uint64
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


@pytest.mark.parametrize("bits", [1, 2, 6, 7, 11, 12, 63, 64])
def test_states_through_blocks_match_plaintext(bits, rng, source):
    a, b = operands(rng, 777)

    async def both(party, own):
        return [await through_blocks(party, own, bits, rule) for rule in (CARRY, EQUAL)]

    first, second = run_pair(both, (a,), (b,), source=source)
    for rule, share0, share1 in zip((CARRY, EQUAL), first, second):
        assert share0.dtype == np.uint8 and set(np.unique(share0)) <= {0, 1}
        assert np.array_equal(share0 ^ share1, expected(rule, a, b, bits)), rule.name


def test_no_values_and_one_value(source):
    async def both(party, own):
        return [await through_blocks(party, own, 63, CARRY) for own in (own[:0], own)]

    (empty0, one0), (empty1, one1) = run_pair(
        both, (np.array([2**62], U64),), (np.array([2**62], U64),), source=source)
    assert empty0.size == empty1.size == 0
    assert (one0 ^ one1).tolist() == [1]


def test_block_layout_and_offers():
    assert blocks(63) == [(0, 6, False)] + [(6 + 5 * i, 5, True) for i in range(11)] + [
        (61, 2, True)]
    assert blocks(1) == [(0, 1, False)]
    rng = np.random.default_rng(3)
    words = rng.integers(0, 2**64, 200, dtype=U64, endpoint=False)
    by = rng.integers(0, 64, 200).astype(np.uint8)
    moved = permuted(words, by, 6)
    for word, shift, out in zip(words, by, moved):
        assert all((int(out) >> k & 1) == (int(word) >> (k ^ int(shift)) & 1) for k in range(64))
    # a carry list: bit k of the sender's key 0b1_00101 (value 5, state share 1) offered
    # under d is the carry out of 5 + (k ^ d) & 31 + (1 ^ (k ^ d) >> 5)
    table = offers(CARRY, 5, True)
    for d in (0, 9, 63):
        word = int(table[(0b100101 << 6) | d])
        for k in range(64):
            entry = k ^ d
            assert word >> k & 1 == (5 + (entry & 31) + (1 ^ entry >> 5)) >> 5


def test_what_each_server_receives_does_not_depend_on_the_values():
    """Every message of the protocol (the d of the receiver, the masked lists of the sender),
    for all-zero values and for random ones: the same distribution, byte by byte."""
    n = 1 << 14

    async def recorded(party, own):
        sent = []
        send = party.link.send

        async def keep(*arrays):
            sent.append([np.array(a) for a in arrays])
            await send(*arrays)

        party.link.send = keep
        await through_blocks(party, own, 63, CARRY)
        return sent

    rng = np.random.default_rng(5)
    zeros = run_pair(recorded, (np.zeros(n, U64),), (np.zeros(n, U64),), source="ot")
    values = run_pair(recorded, *[(rng.integers(0, 2**64, n, dtype=U64, endpoint=False),)
                                  for _ in range(2)], source="ot")
    for server in (0, 1):
        assert len(zeros[server]) == len(values[server]) >= 6
        for message_z, message_v in zip(zeros[server], values[server]):
            for part_z, part_v in zip(message_z, message_v):
                bytes_z, bytes_v = part_z.view(np.uint8), part_v.view(np.uint8)
                assert bytes_z.shape == bytes_v.shape
                statistic = two_sample_statistic(bytes_z.astype(U64), bytes_v.astype(U64), 0)
                assert statistic < CHI2_LIMIT
