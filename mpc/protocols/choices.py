"""Comparisons of the servers' own values through random 1-out-of-N OTs (where ANDs are dear).

msb(x0 + x1) is x0[63] ^ x1[63] ^ the carry out of the low 63 bits of x0 + x1, and x == y
iff z0 == -z1 for z = x - y: each is a function of one value server 0 holds in the clear and
one server 1 holds. Such a function goes block by block through a one-bit state (the carry, or
"equal so far"), shared by XOR. For a block, its sender lists the next state for each of the
receiver's N = 2^(bits + 1) possible inputs (the receiver's block bits and its share of the
state), XORed with a fresh bit r of its own, which becomes its share of the next state; the
receiver reads the one entry of its input through a random 1-out-of-N OT on bits
(correlation one_of_n: the sender holds N random bits, the receiver an index rho and bit
rho). The receiver sends d = input ^ rho, the sender sends the list permuted by d and masked
by its bits, so entry rho, the only one the receiver can unmask, is the receiver's own; every
other entry is hidden by a bit the receiver lacks, and d hides the input behind rho.

Roles alternate, so that each message carries the sender's list of one block and, as the next
block's receiver, its d (its share of the state being the r it drew): one message per block,
no AND triples. Blocks of BLOCK_BITS bits (the first, which has no state to take in, of one
more) make 75 COTs for a 63-bit carry where a ripple of ANDs makes 126 (two per bit), in 14
messages instead of 63 rounds; the lists cost 107 bytes per value.

For few values, where rounds count more, `block_leaves` gives every block's own outcome at
once (for a carry, whether the block generates one and whether it propagates one; for
equality, whether the blocks are equal) from the same lists without a state, in two rounds
(all d, then all lists), for an AND tree over the blocks to combine: 63 COTs and 27 ANDed
bits (54 COTs) for a carry, where a tree over bits ANDs about 190 (380 COTs).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from twofold.mpc.correlations.one_of_n import low_bits
from twofold.mpc.party import Party
from twofold.mpc.ring import U64
from twofold.mpc.shares import XorBits

BLOCK_BITS = 5  # a block and the state bit: 64 entries, a list in one word


@dataclass(frozen=True)
class Rule:
    """How the state goes through a block: next(mine, theirs, state, bits) for the two
    servers' block values (symmetric in them) and the state going in, elementwise."""

    name: str
    start: int
    next: Callable[..., Any]


CARRY = Rule("carry", 0, lambda mine, theirs, carry, bits: (mine + theirs + carry) >> bits)
EQUAL = Rule("equal", 1, lambda mine, theirs, equal, bits: equal & (mine == theirs))


@dataclass(frozen=True)
class Leaf:
    """A block's own outcome: value(mine, theirs, bits), `width` bits, for blocks of
    `block_bits` bits (entries * width <= 64)."""

    name: str
    width: int
    block_bits: int
    value: Callable[..., Any]


def _generate_propagate(mine, theirs, bits):
    total = mine + theirs
    return (total >> bits) | ((total == (1 << bits) - 1) << 1)


CARRY_LEAF = Leaf("carry", 2, 5, _generate_propagate)  # bit 0 generates, bit 1 propagates
EQUAL_LEAF = Leaf("equal", 1, 6, lambda mine, theirs, bits: mine == theirs)


def blocks(bits: int) -> list[tuple[int, int, bool]]:
    """(lowest bit, bits, whether the state goes in) of each block, low to high."""
    first = min(bits, BLOCK_BITS + 1)
    out, low = [(0, first, False)], first
    while low < bits:
        size = min(BLOCK_BITS, bits - low)
        out.append((low, size, True))
        low += size
    return out


def leaf_blocks(bits: int, leaf: Leaf) -> list[tuple[int, int]]:
    """(lowest bit, bits) of each block of block_leaves, low to high."""
    return [(low, min(leaf.block_bits, bits - low)) for low in range(0, bits, leaf.block_bits)]


def _sender(block: int) -> int:
    """Server 1 sends the first block's list (server 0 opens with its d), then they alternate."""
    return 1 - block % 2


def plan(count: int, bits: int) -> list[tuple[str, dict]]:
    """The correlations through_blocks asks for, for `count` values over `bits` bits."""
    return [("one_of_n", {"shape": [count], "entries": 1 << (size + with_state),
                          "sender": _sender(block), "width": 1})
            for block, (_, size, with_state) in enumerate(blocks(bits))]


def leaf_plan(count: int, bits: int, leaf: Leaf) -> list[tuple[str, dict]]:
    """The correlations block_leaves asks for."""
    return [("one_of_n", {"shape": [count], "entries": 1 << size, "sender": _sender(block),
                          "width": leaf.width})
            for block, (_, size) in enumerate(leaf_blocks(bits, leaf))]


def _table(value_of, key_bits: int, input_bits: int, width: int) -> np.ndarray:
    """The sender's lists for every key and d, at (key << input_bits) | d: entry k (`width`
    bits from k * width) holds value_of(key, k ^ d), the outcome for the receiver's input
    k ^ d. At most 4,096 words, so that a list is one gather."""
    keys = np.arange(1 << key_bits)[:, None, None]
    d, k = np.arange(1 << input_bits)[None, :, None], np.arange(1 << input_bits)[None, None, :]
    values = np.asarray(value_of(keys, k ^ d)).astype(U64) & low_bits(width)
    return np.bitwise_or.reduce(values << (k.astype(U64) * U64(width)), axis=2).reshape(-1)


@functools.cache
def offers(rule: Rule, size: int, with_state: bool) -> np.ndarray:
    """through_blocks' lists: keys and inputs are a block value with a state share above."""
    mask, width = (1 << size) - 1, size + with_state

    def next_state(key, inputs):
        state = ((key ^ inputs) >> size) & 1 if with_state else rule.start
        return rule.next(key & mask, inputs & mask, state, size)
    return _table(next_state, width, width, 1)


@functools.cache
def leaf_offers(leaf: Leaf, size: int) -> np.ndarray:
    return _table(lambda key, inputs: leaf.value(key, inputs, size), size, size, leaf.width)


def _repeat(entries: int, width: int) -> np.uint64:
    """The word with a 1 at the start of each entry: r times it puts r in every entry."""
    return U64(sum(1 << (k * width) for k in range(entries)))


def _wire(entries: int) -> np.dtype:
    """The narrowest unsigned type of a list of one-bit entries (sent as its bytes)."""
    return np.dtype(f"uint{max(8, entries)}")


def _kernels():
    """Compiled steps (numba), imported when first used: only processes that compare this
    way pay for numba's import."""
    from twofold.mpc.protocols import choice_kernels
    return choice_kernels


async def _taken(party: Party, requests: list[tuple[str, dict]]
                 ) -> AsyncIterator[tuple[np.ndarray, ...]]:
    """The correlations of `requests`, announced ahead and then taken one by one, in order on
    both servers."""
    party.corr.prefetch(requests)
    for kind, params in requests:
        yield await party.corr.get(kind, **params)


async def through_blocks(party: Party, own: npt.NDArray[np.uint64], bits: int,
                         rule: Rule) -> XorBits:
    """XOR shares (uint8 0/1) of the state after the low `bits` bits of this server's own
    values `own` (uint64, 1-d) and the peer's have gone through `rule`. One message per block
    (and one more), each way in turn."""
    n = own.size
    if n == 0:
        return XorBits(np.zeros(0, np.uint8))
    kernels, layout = _kernels(), blocks(bits)
    correlations = _taken(party, plan(n, bits))

    def d_for(block: int, share: np.ndarray, index: np.ndarray) -> np.ndarray:
        d = np.empty(n, np.uint8)
        kernels.block_inputs(own, *layout[block], share, index, d)
        return d

    share = np.zeros(n, np.uint8)  # of the state going into the current block
    # the next block's correlation, when this server took it early
    ahead: tuple[np.ndarray, ...] | None = None
    if party.id != _sender(0):
        ahead = await anext(correlations)
        await party.link.send(d_for(0, share, ahead[0]))
    d = None  # the receiver's d for the block this server sends next
    for block, (low, size, with_state) in enumerate(layout):
        last = block + 1 == len(layout)
        levels = size + with_state
        correlation = ahead if ahead is not None else await anext(correlations)
        ahead = None
        if party.id == _sender(block):
            (masks,) = correlation
            if block == 0:
                (d,) = await party.link.recv(expect=[(np.uint8, (n,))])
            fresh = party.rng.bits(n)
            offer = np.empty(n, _wire(1 << levels))
            kernels.offer_lists(own, low, size, with_state, share, d, levels,
                                offers(rule, size, with_state), masks, fresh,
                                _repeat(1 << levels, 1), offer)
            share = fresh
            outgoing = [offer.view(np.uint8)]
            if not last:  # this server receives the next block: its d goes along
                ahead = await anext(correlations)
                outgoing.append(d_for(block + 1, share, ahead[0]))
            await party.link.send(*outgoing)
        else:
            index, bit = correlation
            wire = _wire(1 << levels)
            received = await party.link.recv(expect=[(np.uint8, (n * wire.itemsize,))]
                                             + ([] if last else [(np.uint8, (n,))]))
            share = np.empty(n, np.uint8)
            kernels.read_lists(received[0].view(wire), index, 1, bit, share)
            d = None if last else received[1]
    return XorBits(share)


async def block_leaves(party: Party, own: npt.NDArray[np.uint64], bits: int,
                       leaf: Leaf) -> npt.NDArray[np.uint8]:
    """XOR shares (blocks, n) uint8 of each block's outcome under `leaf`, for the low `bits`
    bits of this server's own values and the peer's. 2 rounds: every d, then every list."""
    n = own.size
    kernels, layout = _kernels(), leaf_blocks(bits, leaf)
    correlations = [c async for c in _taken(party, leaf_plan(n, bits, leaf))]
    sending = [b for b in range(len(layout)) if _sender(b) == party.id]
    receiving = [b for b in range(len(layout)) if _sender(b) != party.id]
    zero = np.zeros(n, np.uint8)
    ds = np.empty((len(receiving), n), np.uint8)
    for row, block in enumerate(receiving):
        kernels.block_inputs(own, *layout[block], False, zero, correlations[block][0], ds[row])
    (their_ds,) = await party.link.exchange(ds, expect=[(np.uint8, (len(sending), n))])
    shares = np.empty((len(layout), n), np.uint8)
    lists = np.empty((len(sending), n), U64)
    for row, block in enumerate(sending):
        low, size = layout[block]
        np.bitwise_and(party.rng.words(n), low_bits(leaf.width), out=shares[block],
                       casting="unsafe")
        kernels.offer_lists(own, low, size, False, zero, their_ds[row], size,
                            leaf_offers(leaf, size), correlations[block][0], shares[block],
                            _repeat(1 << size, leaf.width), lists[row])
    (their_lists,) = await party.link.exchange(lists, expect=[(U64, (len(receiving), n))])
    for row, block in enumerate(receiving):
        index, entry = correlations[block]
        kernels.read_lists(their_lists[row], index, leaf.width, entry, shares[block])
    return shares
