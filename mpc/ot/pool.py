"""Random COTs made ahead, in both directions, by a background task of each server.

Direction p is the one in which server p sends (knows Delta_p). The two servers' producers
extend in lockstep on the "ot-extend" channel: before each batch they exchange which directions
they want extended (a direction whose buffer is below capacity, or for which a consumer waits)
and extend the union, so both always agree on what batch i holds; a direction's k-th batch has
a size fixed by k alone. Consumers take COTs in the same order on both servers (correlations
are made in request order), so COT number j of a direction is the same COT on both sides.
A producer keeps ahead of its consumers by as many COTs as they have taken so far (at least
one batch, at most the capacity), so a small job extends little and a large one runs ahead.
Memory stays bounded: a buffer grows past that only by one batch, or when a consumer asks for
more at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from mpc.errors import ProtocolMismatch
from mpc.link import Channel
from mpc.ot.extension import BLOCKS, CotReceiver, CotSender

U64 = np.uint64
FIRST_BATCH_WORDS = 1 << 6  # 4,096 COTs: small jobs start quickly...
LAST_BATCH_WORDS = 1 << 14  # ...then batches double up to 1,048,576 COTs
DEFAULT_CAPACITY = 1 << 22  # COTs buffered per direction (about 70 MB)


@dataclass
class Cots:
    """Consecutive COTs of one direction as one side holds them: rows q (sender) or t and
    choice bits (receiver)."""

    rows: np.ndarray  # (m, 2) uint64
    choices: np.ndarray | None  # (m,) uint8 0/1, receiver only
    first: int  # number of the first COT in its direction
    sender: int  # the party that sends in this direction

    def __len__(self) -> int:
        return len(self.rows)


class _Buffer:
    def __init__(self, sender: int, receiving: bool):
        self.sender = sender
        self.receiving = receiving
        self.rows: list[np.ndarray] = []
        self.choices: list[np.ndarray] = []
        self.size = 0
        self.taken = 0  # COTs handed out so far: the number of the next one
        self.batches = 0

    def next_batch_words(self) -> int:
        return min(LAST_BATCH_WORDS, FIRST_BATCH_WORDS << self.batches)

    def add(self, rows: np.ndarray, choices: np.ndarray | None) -> None:
        self.rows.append(rows)
        if choices is not None:
            self.choices.append(choices)
        self.size += len(rows)
        self.batches += 1

    def take(self, count: int) -> Cots:
        rows = np.concatenate(self.rows) if len(self.rows) > 1 else self.rows[0]
        choices = None
        if self.receiving:
            choices = np.concatenate(self.choices) if len(self.choices) > 1 else self.choices[0]
            self.choices = [choices[count:]]
        self.rows = [rows[count:]]
        taken = Cots(rows[:count], None if choices is None else choices[:count], self.taken,
                     self.sender)
        self.size -= count
        self.taken += count
        return taken


class CotPool:
    """This server's buffers of the two directions, filled by `run` (a background task)."""

    def __init__(self, channel: Channel, party_id: int, sender: CotSender,
                 receiver: CotReceiver, capacity: int = DEFAULT_CAPACITY):
        self.channel = channel
        self.party_id = party_id
        self.sender = sender
        self.receiver = receiver
        self.capacity = capacity
        # index 0: direction in which this server sends; 1: in which it receives
        self.buffers = (_Buffer(party_id, False), _Buffer(1 - party_id, True))
        self.wanted = [0, 0]  # COTs a waiting consumer needs, per buffer
        self.extended_cots = [0, 0]
        self._need = asyncio.Event()  # consumers -> producer: demand, or room
        self._more = asyncio.Event()  # producer -> consumers: a batch arrived, or a failure
        self.failure: BaseException | None = None

    async def take(self, sending: int, receiving: int) -> tuple[Cots, Cots]:
        """The next `sending` COTs in which this server sends and `receiving` in which it
        receives; waits for the producer when the buffers hold fewer."""
        counts = (sending, receiving)
        while any(buffer.size < count for buffer, count in zip(self.buffers, counts)):
            self.wanted = [max(count - buffer.size, 0)
                           for buffer, count in zip(self.buffers, counts)]
            self._need.set()
            self._more.clear()
            await self._more.wait()
            if self.failure is not None:
                raise self.failure
        self.wanted = [0, 0]
        taken = tuple(buffer.take(count) for buffer, count in zip(self.buffers, counts))
        self._need.set()
        return taken

    def _wishes(self) -> int:
        """Bit d set: this server wants direction d (the one server d sends in) extended."""
        wish = 0
        for buffer, wanted in zip(self.buffers, self.wanted):
            ahead = min(self.capacity, max(buffer.taken, 64 * FIRST_BATCH_WORDS))
            if buffer.size < ahead or wanted > 0:
                wish |= 1 << buffer.sender
        return wish

    async def run(self) -> None:
        """Extend, batch after batch, whenever either server wants more; a failure (the peer
        gone, say) is handed to every consumer."""
        try:
            await self._extend_forever()
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            self.failure = error
            self._more.set()

    async def _extend_forever(self) -> None:
        while True:
            while not self._wishes():
                self._need.clear()
                await self._need.wait()
            (theirs,) = await self.channel.exchange(np.array([self._wishes()], U64))
            directions = self._wishes() | int(theirs[0])
            sending, receiving = self.buffers
            extend_send = bool(directions >> self.party_id & 1)
            extend_receive = bool(directions >> (1 - self.party_id) & 1)
            message = np.zeros((0, 0), U64)
            if extend_receive:
                message, rows, choices = self.receiver.extend(receiving.next_batch_words())
                receiving.add(rows, choices)
                self.extended_cots[1] += len(rows)
            await self.channel.send(message)
            (their_message,) = await self.channel.recv()
            if extend_send:
                if their_message.shape != (BLOCKS - 1, sending.next_batch_words()):
                    raise ProtocolMismatch("OT extension: the peer sent a batch of another size")
                rows = self.sender.extend(their_message)
                sending.add(rows, None)
                self.extended_cots[0] += len(rows)
            self._more.set()
