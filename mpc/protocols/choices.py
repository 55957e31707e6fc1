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
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from mpc.party import Party

U64 = np.uint64
BLOCK_BITS = 5  # a block and the state bit: 64 entries, a list in one word


@dataclass(frozen=True)
class Rule:
    """How the state goes through a block: next(mine, theirs, state, bits) for the two
    servers' block values (symmetric in them) and the state going in, elementwise."""

    name: str
    start: int
    next: object


CARRY = Rule("carry", 0, lambda mine, theirs, carry, bits: (mine + theirs + carry) >> bits)
EQUAL = Rule("equal", 1, lambda mine, theirs, equal, bits: equal & (mine == theirs))


def blocks(bits: int) -> list[tuple[int, int, bool]]:
    """(lowest bit, bits, whether the state goes in) of each block, low to high."""
    first = min(bits, BLOCK_BITS + 1)
    out, low = [(0, first, False)], first
    while low < bits:
        size = min(BLOCK_BITS, bits - low)
        out.append((low, size, True))
        low += size
    return out


def _entries(size: int, with_state: bool) -> int:
    return 1 << (size + with_state)


def _sender(block: int) -> int:
    """Server 1 sends the first block's list (server 0 opens with its d), then they alternate."""
    return 1 - block % 2


def plan(count: int, bits: int) -> list[tuple[str, dict]]:
    """The correlations a comparison of `count` values over `bits` bits asks for."""
    return [("one_of_n", {"shape": [count], "entries": _entries(size, with_state),
                          "sender": _sender(block)})
            for block, (_, size, with_state) in enumerate(blocks(bits))]


@functools.cache
def offers(rule: Rule, size: int, with_state: bool) -> np.ndarray:
    """The sender's lists, already permuted: entry (key << width) | d, for its key (its block
    value, and its state share in bit `size`) and the receiver's d, is the word whose bit k
    is the next state for the receiver's input k ^ d. At most 4,096 words: one gather."""
    width = size + with_state
    keys, inputs = np.arange(1 << width)[:, None], np.arange(1 << width)[None, :]
    value_mask = (1 << size) - 1
    state = ((keys ^ inputs) >> size) & 1 if with_state else rule.start
    nexts = rule.next(keys & value_mask, inputs & value_mask, state, size).astype(U64) & U64(1)
    lists = np.bitwise_or.reduce(nexts << np.arange(1 << width, dtype=U64)[None, :], axis=1)
    d = np.arange(1 << width)
    return permuted(np.repeat(lists, len(d)), np.tile(d, len(lists)), width)


SWAPS = [U64(sum(1 << k for k in range(64) if not k >> j & 1)) for j in range(6)]


def permuted(words: np.ndarray, by: np.ndarray, levels: int) -> np.ndarray:
    """Bit k of the result is bit k ^ by of words (elementwise): one butterfly level per bit
    of `by`, swapping neighbouring runs of 2^j bits where bit j is set."""
    out = words.copy()
    for j in range(levels):
        shift, low = U64(1 << j), SWAPS[j]
        swapped = ((out >> shift) & low) | ((out & low) << shift)
        np.copyto(out, swapped, where=((by >> j) & 1).astype(bool))
    return out


def _wire(entries: int) -> np.dtype:
    """The narrowest unsigned type of a list of `entries` bits (sent as its bytes)."""
    return np.dtype(f"uint{max(8, entries)}")


async def through_blocks(party: Party, own: np.ndarray, bits: int, rule: Rule) -> np.ndarray:
    """XOR shares (uint8 0/1) of the state after the low `bits` bits of this server's own
    values `own` (uint64, 1-d) and the peer's have gone through `rule`. One message per block
    (and one more), each way in turn."""
    n = own.size
    if n == 0:
        return np.zeros(0, np.uint8)
    layout, requests = blocks(bits), plan(n, bits)
    party.corr.prefetch(requests)
    taken: list[tuple] = []

    async def correlation(block: int) -> tuple:  # in block order on both servers
        while len(taken) <= block:
            kind, params = requests[len(taken)]
            taken.append(await party.corr.get(kind, **params))
        return taken[block]

    # compiled steps (numba), imported here: only processes that compare this way pay for it
    from mpc.protocols import choice_kernels as kernels

    def d_for(block: int, share: np.ndarray, index: np.ndarray) -> np.ndarray:
        d = np.empty(n, np.uint8)
        kernels.block_inputs(own, *layout[block], share, index, d)
        return d

    share = np.zeros(n, np.uint8)  # of the state going into the current block
    if party.id != _sender(0):
        index, _ = await correlation(0)
        await party.link.send(d_for(0, share, index))
    d = None  # the receiver's d for the block this server sends next
    for block, (low, size, with_state) in enumerate(layout):
        last = block + 1 == len(layout)
        wire = _wire(1 << (size + with_state))
        if party.id == _sender(block):
            (masks,) = await correlation(block)
            if block == 0:
                (d,) = await party.link.recv()
            fresh = party.rng.bits(n)
            offer = np.empty(n, wire)
            kernels.offer_lists(own, low, size, with_state, share, d,
                                offers(rule, size, with_state), masks, fresh, offer)
            share = fresh
            outgoing = [offer.view(np.uint8)]
            if not last:  # this server receives the next block: its d goes along
                index, _ = await correlation(block + 1)
                outgoing.append(d_for(block + 1, share, index))
            await party.link.send(*outgoing)
        else:
            index, bit = await correlation(block)
            received = await party.link.recv()
            kernels.read_lists(received[0].view(wire), index, bit, share)
            d = None if last else received[1]
    return share
