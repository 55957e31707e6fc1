"""OT multiplication: from COTs to shares of products, in one message each way.

For a COT with choice c (receiver) and rows q = t + c * Delta (sender), the pads
p0 = H(q), p1 = H(q + Delta) (sender) and H(t) = p_c (receiver) are independent random words
(PadHash). To share c * D for a vector D of the sender's, plus an offset M of the sender's,
the sender sends tau = p0 - p1 + D and keeps M - p0; the receiver takes p_c + c * tau, which is
p0 (c = 0) or p0 + D (c = 1). tau hides D behind p1, which the receiver cannot compute; the
sender learns nothing of c.

Gilboa's product of a word y (the receiver's, bit i = choice i) by a vector x (the sender's)
is 64 such products with D = x, each scaled by 2^i; a correction scaled by 2^s is only needed
modulo 2^(64 - s), so it goes on the wire in 8, 4, 2 or 1 bytes (344 bytes per 64-bit word
instead of 512).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twofold.mpc.link import Channel
from twofold.mpc.ot.extension import PadHash
from twofold.mpc.ot.kernels import receiver_products, sender_products, xor_delta
from twofold.mpc.ot.pool import CotPool, ReceivedCots, SentCots
from twofold.mpc.ring import U64

BITS_AT_ONCE = 1 << 16  # random bit OTs hashed per slice
WIDTH_CLASSES = ((32, U64), (48, np.uint32), (56, np.uint16), (64, np.uint8))  # shift below


@dataclass(frozen=True)
class Side:
    """One direction of a batch of products, laid out (items, positions, width): `width`
    words per product, each position scaled by 2^shifts[position] (None: no scaling)."""

    items: int
    positions: int
    width: int
    shifts: np.ndarray | None = None  # (positions,)

    @property
    def count(self) -> int:
        return self.items * self.positions

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.items, self.positions, self.width


def _classes(shifts: np.ndarray):
    """Positions grouped by the bytes their corrections need: (positions, dtype); a run of
    consecutive positions is a slice (views and plain copies instead of fancy indexing)."""
    lower = 0
    for upper, dtype in WIDTH_CLASSES:
        positions = np.flatnonzero((shifts >= lower) & (shifts < upper))
        if len(positions) and positions[-1] - positions[0] == len(positions) - 1:
            yield slice(int(positions[0]), int(positions[-1]) + 1), dtype
        else:
            yield positions, dtype
        lower = upper


def narrow(tau: np.ndarray, shifts: np.ndarray | None) -> list[np.ndarray]:
    """Corrections (items, positions, width) in as few bytes as their scaling allows."""
    if shifts is None:
        return [tau]
    return [tau[:, columns] if dtype is U64 else tau[:, columns].astype(dtype).view(np.uint8)
            for columns, dtype in _classes(shifts)]


def widen(parts: list[np.ndarray], side: Side) -> np.ndarray:
    if side.shifts is None:
        (tau,) = parts
        return tau.reshape(side.shape)
    tau = np.empty(side.shape, U64)
    for part, (columns, dtype) in zip(parts, _classes(side.shifts), strict=True):
        count = np.arange(side.positions)[columns].size
        tau[:, columns] = part.view(dtype).reshape(side.items, count, side.width)
    return tau


def _operand(values, shape) -> np.ndarray:
    """A product's correlation or offset (None for zero), broadcastable to `shape`, as a
    contiguous 3-d array whose axes are full or of length 1 (the kernel broadcasts)."""
    values = np.asarray(U64(0) if values is None else values, U64)
    values = values.reshape((1,) * (3 - values.ndim) + values.shape)
    np.broadcast_shapes(values.shape, shape)  # raises if it does not broadcast
    return np.ascontiguousarray(values)


def _shifts(side: Side) -> np.ndarray:
    """The side's scalings, spelled out for the compiled loops."""
    return np.zeros(side.positions, U64) if side.shifts is None else side.shifts.astype(U64)


class Multiplier:
    """OT products with the peer, from the COT pool, on the "ot-correlate" channel."""

    def __init__(self, pool: CotPool, channel: Channel, pad_hash: PadHash):
        self.pool = pool
        self.channel = channel
        self.pad_hash = pad_hash

    def _pads(self, cots: SentCots | ReceivedCots, width: int,
              delta: np.ndarray | None = None) -> np.ndarray:
        """The pads of the rows, or with `delta` (a sender's) of the rows flipped by it."""
        return self.pad_hash.pads(cots.rows, cots.first, cots.sender, width, delta)

    async def take(self, sending: int, receiving: int) -> tuple[SentCots, ReceivedCots]:
        return await self.pool.take(sending, receiving)

    def sender_pads(self, cots: SentCots, width: int) -> tuple[np.ndarray, np.ndarray]:
        return self._pads(cots, width), self._pads(cots, width, cots.delta)

    def receiver_pads(self, cots: ReceivedCots, width: int) -> np.ndarray:
        return self._pads(cots, width)

    def chosen(self, cots: SentCots, flips: np.ndarray) -> SentCots:
        """The sender's COTs after the receiver asked for choices c ^ flips instead of its
        random c (it sends flips = wanted ^ c, which reveal nothing: c is uniform)."""
        rows = np.empty_like(cots.rows)
        xor_delta(cots.rows, np.atleast_2d(cots.delta), flips, rows)
        return SentCots(rows, cots.first, cots.sender, cots.delta)

    async def products(self, send_cots: SentCots, sending: Side, correlation, offset,
                       receive_cots: ReceivedCots, receiving: Side):
        """Shares of c * correlation + offset over this server's sending COTs (c the peer's
        choices), and of the peer's products over its receiving COTs (c its own choices, which
        a caller may have used to build its correlation). correlation and offset (or None for
        zero) broadcast to sending.shape. Returns (shares as sender, shares as receiver),
        shaped like their sides. The peer calls this with the two sides swapped."""
        mine = self._pads(send_cots, sending.width).reshape(sending.shape)
        tau = self._pads(send_cots, sending.width, send_cots.delta).reshape(sending.shape)
        sender_products(mine, tau, _operand(correlation, sending.shape),
                        _operand(offset, sending.shape), _shifts(sending))
        await self.channel.send(*narrow(tau, sending.shifts))
        theirs = widen(await self.channel.recv(), receiving)
        got = self._pads(receive_cots, receiving.width).reshape(receiving.shape)
        receiver_products(got, receive_cots.choices, theirs, _shifts(receiving))
        return mine, got

    async def random_bits(self, count: int):
        """Random OTs on bits, no message: as sender, random bits x and shares s; as receiver,
        choices c and shares r, with s ^ r = x * c across the two servers' directions.
        Returns (x, s, c, r) as uint8 0/1 arrays."""
        x, s, c, r = (np.empty(count, np.uint8) for _ in range(4))
        for start in range(0, count, BITS_AT_ONCE):  # taken and hashed while in cache
            part = slice(start, min(count, start + BITS_AT_ONCE))
            size = part.stop - start
            send_cots, receive_cots = await self.pool.take(size, size)
            pad0, pad1 = (pads[:, 0] for pads in self.sender_pads(send_cots, 1))
            pad = self.receiver_pads(receive_cots, 1)[:, 0]
            np.bitwise_and(pad0 ^ pad1, 1, out=x[part], casting="unsafe")
            np.bitwise_and(pad0, 1, out=s[part], casting="unsafe")
            c[part] = receive_cots.choices
            np.bitwise_and(pad, 1, out=r[part], casting="unsafe")
        return x, s, c, r
