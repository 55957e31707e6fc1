"""Random COTs made in idle time (`twofold server preprocess`) and kept on disk for later jobs.

Each server keeps its own half of every batch: for the direction in which it sends, the rows q
and its Delta; for the other, the rows t and its choice bits. These are as secret as shares, so
they live under the server's data directory, in files of mode 0600:
    <data_dir>/correlations/<id>.cots    (two .npy arrays: rows, then choices or Delta)
A batch is written to a temporary name, fsynced and renamed: it is whole or absent. Its id packs
the preprocessing session, the direction and the batch number, the same on both servers.

A job uses stored batches first: the servers exchange the ids they hold and use those both hold,
in order; a batch's file is deleted, durably, before any of its COTs is used, so no COT is ever
used twice, across crashes, restarts and retries. An id only one server holds is what a crash
left behind (the other server deleted or never finished its half) and is deleted unused.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from twofold.mpc.errors import MpcError
from twofold.mpc.files import fsync_dir
from twofold.mpc.ring import U64

NUMBER_BITS = 23  # batches per direction and session
SUFFIX = ".cots"


def batch_id(session: int, direction: int, number: int) -> int:
    return (session << (NUMBER_BITS + 1)) | (direction << NUMBER_BITS) | number


def direction_of(identifier: int) -> int:
    return (identifier >> NUMBER_BITS) & 1


class StoreInUse(MpcError):
    """Another process uses this server's COT store."""


@contextmanager
def exclusive(folder: Path):
    """Hold the store for this process: a running server (whose jobs and idle-time
    preprocessing use it) or `twofold server preprocess`, never both (they would also contend
    for the job link, and one could delete the other's half-written batch)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreInUse(f"{folder} is in use by another process: a running `twofold "
                             "server run` (which makes COTs itself while idle, with idle_cots "
                             "in its config) or `twofold server preprocess`") from None
        yield
    finally:
        os.close(handle)  # releases the lock


class CotStore:
    """One server's stored halves of COT batches."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for leftover in self.folder.glob("*.partial"):  # a crash while writing
            leftover.unlink()

    def _path(self, identifier: int) -> Path:
        return self.folder / f"{identifier:016x}{SUFFIX}"

    def ids(self) -> list[int]:
        return sorted(int(path.stem, 16) for path in self.folder.glob(f"*{SUFFIX}"))

    def held(self, identifiers, direction: int) -> int:
        """COTs in the given batches of a direction."""
        return sum(np.load(self._path(i), mmap_mode="r").shape[0] for i in identifiers
                   if direction_of(i) == direction)

    def put(self, identifier: int, rows: np.ndarray, second: np.ndarray) -> None:
        """Store a batch half durably: rows, then choice bits (receiver) or Delta (sender)."""
        partial = self.folder / f"{identifier:016x}.partial"
        handle = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "wb") as out:
            np.save(out, np.ascontiguousarray(rows))
            np.save(out, np.ascontiguousarray(second))
            out.flush()
            os.fsync(out.fileno())
        os.rename(partial, self._path(identifier))
        fsync_dir(self.folder)

    def take(self, identifier: int) -> tuple[np.ndarray, np.ndarray]:
        """Load a batch half and delete it durably before returning it: used at most once."""
        path = self._path(identifier)
        with open(path, "rb") as source:
            rows = np.load(source, allow_pickle=False)
            second = np.load(source, allow_pickle=False)
        path.unlink()
        fsync_dir(self.folder)
        return rows, second

    def discard(self, identifiers) -> None:
        for identifier in identifiers:
            self._path(identifier).unlink(missing_ok=True)
        fsync_dir(self.folder)


async def agree_on_stored(channel, store: CotStore | None) -> list[int]:
    """The stored batches both servers hold, in order; the others are deleted unused. A
    server without a store holds none."""
    mine = np.array(store.ids() if store is not None else [], U64)
    await channel.send(mine)
    (theirs,) = await channel.recv()
    common = np.intersect1d(mine, theirs)
    if store is not None:
        store.discard(int(i) for i in np.setdiff1d(mine, common))
    return [int(i) for i in common]


async def fill(source, store: CotStore, target: int) -> int:
    """Make COTs with the peer until both servers' stores hold `target` per direction (the
    smaller of the two servers' targets); returns how many were made per direction."""
    common = await agree_on_stored(source.correlate_channel, store)
    held = min(store.held(common, direction) for direction in (0, 1))
    mine = np.array([target, int.from_bytes(os.urandom(4), "big")], U64)
    (theirs,) = await source.correlate_channel.exchange(mine)
    session = int(mine[1] ^ theirs[1])
    wanted = max(0, int(min(mine[0], theirs[0])) - held)
    batch = source.pool.batch_size()
    made = 0
    for number in range(-(-wanted // batch)):
        sent, received = await source.pool.take(batch, batch)
        party = source.party_id
        store.put(batch_id(session, party, number), sent.rows, sent.delta)
        store.put(batch_id(session, 1 - party, number), received.rows, received.choices)
        made += batch
    return made
