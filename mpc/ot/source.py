"""OtSource: correlated randomness made by server 0 and server 1 between themselves.

Opening a source (once per job) runs fresh base OTs in both directions and agrees on a fresh
public key for the pad hash, so nothing carries over from one job to the next; then background
tasks keep extending COTs (pool.py) on the channels "ot-extend-0" and "ot-extend-1" while the
online protocol runs. Correlations are made in request order (CorrelationSource) on the
"ot-correlate" channel, from those COTs, by each kind's `by_ot` (mpc.correlations) on this
job's constructions (constructions.py); requests announced together are made in groups, one
exchange for many (mpc.request_groups). Per kind, the source counts what it made and what it
cost, for `twofold bench mpc --correlations ot`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass

from twofold.mpc import request_groups
from twofold.mpc.accounting import Accounting
from twofold.mpc.correlation_source import CorrelationSource, Request
from twofold.mpc.correlations import KINDS
from twofold.mpc.link import PeerLink
from twofold.mpc.ot.constructions import Constructions
from twofold.mpc.ot.extension import BYTES_PER_COT, PadHash, setup
from twofold.mpc.ot.multiply import Multiplier
from twofold.mpc.ot.pool import DEFAULT_CAPACITY, CotPool
from twofold.mpc.ot.store import CotStore, agree_on_stored
from twofold.mpc.prg import Prg


@dataclass
class KindCosts:
    requests: int = 0
    elements: int = 0
    cots_sent: int = 0  # COTs in which this server was the sender
    cots_received: int = 0  # ... the receiver (it sent their extension message)
    correction_bytes: int = 0  # sent on the correlate channel
    extension_bytes: float = 0.0  # this server's extension messages for its received COTs
    seconds: float = 0.0


class OtSource(CorrelationSource):
    """Correlations from OT with the peer; no third party."""

    merges_announced = True

    def __init__(self, link: PeerLink, accounting: Accounting,
                 capacity: int = DEFAULT_CAPACITY, store: CotStore | None = None):
        super().__init__(accounting)
        self.store = store  # COTs made in idle time, used before any made in the job
        self.party_id = link.party_id
        self.correlate_channel = link.channel("ot-correlate")
        self.extend_channels = (link.channel("ot-extend-0"), link.channel("ot-extend-1"))
        self.capacity = capacity
        self.prg = Prg.fresh()  # this server's own randomness for its parts
        self.costs: dict[str, KindCosts] = {}
        self.pool: CotPool | None = None
        self._made: Constructions | None = None  # what each kind's by_ot builds on
        self._extending: list[asyncio.Task] = []

    async def open(self) -> None:
        with self.accounting.offline():
            sender, receiver = await setup(self.correlate_channel, self.prg)
            mine = self.prg.random_bytes(16)
            (theirs,) = await self.correlate_channel.exchange(mine)
            stored = await agree_on_stored(self.correlate_channel, self.store)
        self.pool = CotPool(self.extend_channels, self.party_id, sender, receiver,
                            self.capacity, self.store, stored)
        mult = Multiplier(self.pool, self.correlate_channel, PadHash((mine ^ theirs).tobytes()))
        self._made = Constructions(mult, self.party_id, self.prg)
        loop = asyncio.get_running_loop()
        self._extending = [loop.create_task(task) for task in self.pool.tasks()]

    async def stop(self) -> None:
        await super().stop()
        for task in self._extending:
            task.cancel()
        await asyncio.gather(*self._extending, return_exceptions=True)
        self._extending = []

    def cost_report(self) -> dict:
        return {kind: asdict(cost) for kind, cost in self.costs.items()}

    async def _produce(self, batch: list[Request]) -> list[tuple]:
        return [await self._make(kind, params) for kind, params in batch]

    async def _make(self, kind: str, params: dict) -> tuple:
        pool, made = self.pool, self._made
        if pool is None or made is None:
            raise RuntimeError("an OT source makes correlations once it is open")
        cost = self.costs.setdefault(kind, KindCosts())
        sent, received = pool.sending.taken, pool.receiving.taken
        bytes_before, start = self.correlate_channel.bytes_sent, time.perf_counter()
        value = await KINDS[kind].by_ot(made, params)
        cost.requests += 1
        cost.elements += request_groups.elements(kind, params)
        cost.cots_sent += pool.sending.taken - sent
        cost.cots_received += pool.receiving.taken - received
        cost.extension_bytes = cost.cots_received * BYTES_PER_COT
        cost.correction_bytes += self.correlate_channel.bytes_sent - bytes_before
        cost.seconds += time.perf_counter() - start
        return value
