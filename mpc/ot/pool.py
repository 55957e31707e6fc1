"""Random COTs made ahead, in both directions, by background tasks of each server.

Direction p is the one in which server p sends (knows Delta_p); its COTs are extended on the
channel "ot-extend-p", where the receiver of the direction sends one message per batch. A
direction's k-th batch has a size fixed by k alone, and how many batches are extended is a
function of what consumers have taken: after each take, a direction is extended until it holds
as many unused COTs as have been taken so far (at least one batch, at most `capacity`), and a
take waits until it holds enough. Consumers take COTs in the same order on both servers
(correlations are made in request order), so both servers extend the same batches, COT number
j of a direction is the same COT on both sides, and the extension traffic is a fixed schedule
that depends on nothing but the sizes taken (where the job ends may cut it short). Memory stays
bounded: a buffer holds at most `capacity` plus one batch, or one larger take.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from twofold.mpc.errors import ProtocolMismatch
from twofold.mpc.link import Channel
from twofold.mpc.ot.extension import BLOCKS, CotReceiver, CotSender
from twofold.mpc.ot.store import CotStore, direction_of
from twofold.mpc.ring import U64

Extension = TypeVar("Extension", CotSender, CotReceiver)  # a direction's side of the extension
FIRST_BATCH_WORDS = 1 << 6  # 4,096 COTs: small jobs start quickly...
LAST_BATCH_WORDS = 1 << 11  # ...then batches double up to 131,072 COTs (2 MiB of rows: the
# extension's transposes and sums run in cache; at 2^19 COTs they ran a fifth slower)
DEFAULT_CAPACITY = 1 << 22  # unused COTs kept ahead per direction (about 70 MB)


@dataclass
class SentCots:
    """Consecutive COTs of the direction in which this server sends: rows q and Delta."""

    rows: np.ndarray  # (m, 2) uint64
    first: int  # number of the first COT in its direction
    sender: int  # the party that sends in this direction
    delta: np.ndarray  # (2,), or (m, 2) when stored COTs are mixed

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class ReceivedCots:
    """Consecutive COTs of the direction in which this server receives: rows t and choice
    bits."""

    rows: np.ndarray  # (m, 2) uint64
    choices: np.ndarray  # (m,) uint8 0/1
    first: int
    sender: int

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class _Segment:
    """Unused COTs of one batch: rows, and choice bits (receiver) or the batch's Delta
    (sender; a stored batch has its own)."""

    rows: np.ndarray
    choices: np.ndarray | None
    delta: np.ndarray | None

    def split(self, count: int) -> tuple[_Segment, _Segment]:
        def cut(part):
            return (None, None) if part is None else (part[:count], part[count:])
        (rows, rows_rest), (choices, choices_rest) = cut(self.rows), cut(self.choices)
        return (_Segment(rows, choices, self.delta),
                _Segment(rows_rest, choices_rest, self.delta))


def _take_front(segments: deque, count: int) -> list[_Segment]:
    """The first `count` COTs of `segments`, removed from it (no copies)."""
    taken, needed = [], count
    while needed > 0:
        if len(segments[0].rows) <= needed:
            taken.append(segments.popleft())
        else:
            taken_part, segments[0] = segments[0].split(needed)
            taken.append(taken_part)
        needed -= len(taken[-1].rows)
    return taken


def _joined(parts: list[np.ndarray], empty: np.ndarray) -> np.ndarray:
    if not parts:
        return empty
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _held(part: np.ndarray | None) -> np.ndarray:
    """A segment's choice bits in a direction that receives, its Delta in one that sends."""
    if part is None:
        raise ValueError("COTs of the wrong side of their direction")
    return part


def _deltas(segments: list[_Segment], session_delta: np.ndarray) -> np.ndarray:
    """One Delta if every segment has the session's, else one per row (stored COTs)."""
    if all(segment.delta is session_delta for segment in segments):
        return session_delta
    return np.concatenate([np.broadcast_to(_held(segment.delta), (len(segment.rows), 2))
                           for segment in segments])


class Direction(ABC, Generic[Extension]):
    """One direction's COTs as this server holds them, and the task that extends them: the
    sending and the receiving side each take and extend in their own way (SendingDirection,
    ReceivingDirection)."""

    def __init__(self, sender: int, channel: Channel, extension: Extension, capacity: int,
                 store: CotStore | None = None, stored: Sequence[int] = ()):
        self.sender = sender
        self.channel = channel
        self.extension: Extension = extension
        self.capacity = capacity
        self.store = store
        self.stored = deque(stored)  # ids of stored batches both servers hold, used first
        self.segments: deque[_Segment] = deque()
        self.size = 0  # unused COTs held
        self.taken = 0  # COTs handed out: the number of the next one
        self.extended = 0
        self.batches = 0
        self.target = 0  # extend until `extended` reaches this
        self.failure: BaseException | None = None
        self._need = asyncio.Event()  # consumer -> producer: a higher target
        self._more = asyncio.Event()  # producer -> consumer: a batch arrived, or a failure

    def _raise_target(self, value: int) -> None:
        if value > self.target:
            self.target = value
            self._need.set()

    def reserve(self, count: int) -> None:
        """Start extending for a take of `count` (so both directions extend at once)."""
        self._raise_target(self.taken + count)

    async def _take(self, count: int) -> tuple[int, list[_Segment], np.ndarray]:
        """The next `count` COTs: the number of the first, their segments and their rows."""
        self.reserve(count)
        while self.size < count:
            if self.failure is not None:
                raise self.failure
            self._more.clear()
            await self._more.wait()
        segments = _take_front(self.segments, count)
        rows = _joined([segment.rows for segment in segments], np.zeros((0, 2), U64))
        first = self.taken
        self.size -= count
        self.taken += count
        first_batch = 64 * FIRST_BATCH_WORDS
        self._raise_target(self.taken + min(self.capacity, max(first_batch, self.taken // 4)))
        return first, segments, rows

    async def run(self) -> None:
        """Extend batch after batch up to the target; a failure (the peer gone, say) is handed
        to the consumer."""
        try:
            while True:
                while self.extended >= self.target:
                    self._need.clear()
                    await self._need.wait()
                await self._extend(min(LAST_BATCH_WORDS, FIRST_BATCH_WORDS << self.batches))
                self._more.set()
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            self.failure = error
            self._more.set()

    async def _extend(self, words: int) -> None:
        if self.stored and self.store is not None:
            # a batch made in idle time: its file is gone before it is used
            segment = self._segment(*self.store.take(self.stored.popleft()))
        else:
            segment = await self._batch(words)
            self.batches += 1
        self.segments.append(segment)
        self.size += len(segment.rows)
        self.extended += len(segment.rows)

    @abstractmethod
    def _segment(self, rows: np.ndarray, held: np.ndarray) -> _Segment:
        """A stored batch's segment, from its rows and its choices or Delta."""

    @abstractmethod
    async def _batch(self, words: int) -> _Segment:
        """The next batch of `words` words, extended with the peer."""


class SendingDirection(Direction[CotSender]):
    async def take(self, count: int) -> SentCots:
        first, segments, rows = await self._take(count)
        return SentCots(rows, first, self.sender, _deltas(segments, self.extension.delta))

    def _segment(self, rows: np.ndarray, held: np.ndarray) -> _Segment:
        return _Segment(rows, None, held)

    async def _batch(self, words: int) -> _Segment:
        (message,) = await self.channel.recv()
        if message.shape != (BLOCKS - 1, words):
            raise ProtocolMismatch(f"OT extension: batch {self.batches} of direction "
                                   f"{self.sender} has shape {message.shape}")
        return _Segment(self.extension.extend(message), None, self.extension.delta)


class ReceivingDirection(Direction[CotReceiver]):
    async def take(self, count: int) -> ReceivedCots:
        first, segments, rows = await self._take(count)
        choices = _joined([_held(segment.choices) for segment in segments],
                          np.zeros(0, np.uint8))
        return ReceivedCots(rows, choices, first, self.sender)

    def _segment(self, rows: np.ndarray, held: np.ndarray) -> _Segment:
        return _Segment(rows, held, None)

    async def _batch(self, words: int) -> _Segment:
        message, rows, choices = self.extension.extend(words)
        await self.channel.send(message)
        return _Segment(rows, choices, None)


class CotPool:
    """This server's two directions: the one it sends in and the one it receives in."""

    def __init__(self, link_channels: tuple[Channel, Channel], party_id: int,
                 sender: CotSender, receiver: CotReceiver, capacity: int = DEFAULT_CAPACITY,
                 store: CotStore | None = None, stored: Sequence[int] = ()):
        self.party_id = party_id
        self.sending = SendingDirection(party_id, link_channels[party_id], sender, capacity,
                                        store, [i for i in stored if direction_of(i) == party_id])
        self.receiving = ReceivingDirection(1 - party_id, link_channels[1 - party_id], receiver,
                                            capacity, store,
                                            [i for i in stored if direction_of(i) != party_id])

    async def take(self, sending: int, receiving: int) -> tuple[SentCots, ReceivedCots]:
        """The next `sending` COTs in which this server sends and `receiving` in which it
        receives; waits for the producers when the buffers hold fewer."""
        self.receiving.reserve(receiving)
        # both at once: a direction that failed (its extension raised, say) must end the take
        # now, not after the other direction has waited out the timeout for the peer
        sent, received = await asyncio.gather(self.sending.take(sending),
                                              self.receiving.take(receiving))
        return sent, received

    @staticmethod
    def batch_size() -> int:
        """COTs in a full batch (what a stored batch holds)."""
        return 64 * LAST_BATCH_WORDS

    def tasks(self):
        return [self.sending.run(), self.receiving.run()]
