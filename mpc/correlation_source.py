"""Correlated randomness as the protocols see it: the CorrelationSource interface.

Protocols ask for correlations one at a time (`get`, or the named helpers below) in an order
that depends only on public sizes, so both servers ask for the same correlations in the same
order; each correlation is handed out once.

A source can be told ahead what a run will ask for (`prefetch(plan)`, a list of requests): a
background producer then makes those correlations before the online phase needs them, in
order, holding at most `budget_elements` made-but-unused elements in memory; `get` waits only
when the producer is behind. A request nobody announced joins the same queue, so correlations
are always made in request order, on both servers alike (a group of requests announced
together, at its first member). Subclasses implement `_produce`,
which makes a batch of consecutive requests: the dealer source answers a batch with one
request to the dealer, the OT source makes it together with the peer, and makes the requests
of one kind announced together as one (mpc.request_groups).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from twofold.mpc.accounting import Accounting
from twofold.mpc.correlations import KINDS
from twofold.mpc.errors import ProtocolMismatch
from twofold.mpc.request_groups import groups, merged, split
from twofold.mpc.shares import Additive, XorBits, XorWords

Request = tuple[str, dict]  # (kind's name, params), as in mpc.correlations.KINDS
# Random bits r, and a half Beaver triple per value multiplied by r: (r, beta, r, r * beta)
BitTriple = tuple[XorBits, Additive, Additive, Additive]
DEFAULT_BUDGET_ELEMENTS = 1 << 25  # about 256 MiB of made-but-unused correlations
BATCH_ELEMENTS = 1 << 22  # a producer batch holds at most this many elements (or one request)
BATCH_REQUESTS = 64


@dataclass
class _Pending:
    kind: str
    params: dict
    elements: int
    value: asyncio.Future
    group: list[_Pending] | None = None  # made together with these (itself first)


def _elements(value: tuple) -> int:
    return sum(np.asarray(array).size for array in value)


def _request(pending: _Pending) -> Request:
    if pending.group is None:
        return pending.kind, pending.params
    return pending.kind, merged(pending.kind, [member.params for member in pending.group])


def _parts(pending: _Pending, value: tuple) -> list[tuple[_Pending, tuple]]:
    if pending.group is None:
        return [(pending, value)]
    members = pending.group
    return list(zip(members, split(pending.kind, [m.params for m in members], value), strict=True))


class CorrelationSource(ABC):
    """Correlations in request order, made on demand or ahead by a background producer."""

    # Whether AND gates come cheaply (a dealer: one word per triple, and_monomials' mask
    # products alike), so that protocols may spend ANDs to save rounds: fan-in-4 trees for
    # few values, log-depth carries up to many (mpc.protocols.boolean). From OT an ANDed bit
    # costs two COTs: trees stay binary, adders ripple (one AND per bit) and comparisons go
    # through 1-out-of-N OTs (mpc.protocols.choices) from 2^11 values.
    cheap_ands = False
    # Whether requests announced together are made in groups (mpc.request_groups): worth it
    # when each request costs an exchange with the peer, not for a dealer's one message.
    merges_announced = False

    def __init__(self, accounting: Accounting, budget_elements: int = DEFAULT_BUDGET_ELEMENTS):
        self.accounting = accounting
        self.budget_elements = budget_elements
        self._queue: deque[_Pending] = deque()  # requested, not yet made
        self._announced: deque[_Pending] = deque()  # prefetched, not yet taken by get
        self._last: _Pending | None = None  # the latest request, made or not
        self._ahead = 0  # elements made but not yet taken
        self._draining = 0  # callers of produced(): make everything, whatever the budget
        self._waiting = 0  # callers of get() waiting for their correlation
        self._wake = asyncio.Event()
        self._producer: asyncio.Task | None = None
        self._failure: BaseException | None = None
        self._recorders: list[list[Request]] = []

    # ---- what a source implements --------------------------------------------------------

    @abstractmethod
    async def open(self) -> None:
        """Start the session (keys, base OTs); called once, before any request."""

    async def close(self) -> None:
        """End the session. Correlations made but not taken are dropped, never reused."""
        await self.stop()

    @abstractmethod
    async def _produce(self, batch: list[Request]) -> list[tuple]:
        """Make the correlations of consecutive requests, in order: this party's parts."""

    # ---- requests ------------------------------------------------------------------------

    def prefetch(self, plan: list[Request]) -> None:
        """Announce the next requests so that the producer makes them ahead. Requests an
        outer caller already announced (a benchmark that prefetched a whole run, around a
        training loop that prefetches its iterations) are checked against the plan, not
        announced twice."""
        # the plan may be longer (its rest is announced below) or shorter than what is announced
        for position, (pending, (kind, params)) in enumerate(zip(self._announced, plan,
                                                                 strict=False)):
            if (pending.kind, pending.params) != (kind, params):
                raise ProtocolMismatch(f"request {position} ahead was announced as "
                                       f"{pending.kind} {pending.params}, now as {kind} {params}")
        new = [self._enqueue(kind, params) for kind, params in plan[len(self._announced):]]
        self._announced.extend(new)
        if self.merges_announced:
            for positions in groups([(pending.kind, pending.params) for pending in new]):
                members = [new[position] for position in positions]
                for member in members:
                    member.group = members

    async def produced(self) -> None:
        """Wait until every request made so far is made, ignoring the memory budget."""
        if self._last is None or self._last.value.done():
            self._raise_failure()
            return
        self._draining += 1
        self._wake.set()
        try:
            await asyncio.wait([self._last.value])
        finally:
            self._draining -= 1
        self._raise_failure()

    async def get(self, kind: str, **params):
        """The next correlation, as this party's part: a named tuple of arrays (the kind's
        Part, mpc.correlations)."""
        for recorder in self._recorders:
            recorder.append((kind, params))
        with self.accounting.offline():
            if self._announced:
                pending = self._announced.popleft()
                if (pending.kind, pending.params) != (kind, params):
                    raise ProtocolMismatch(f"prefetched {pending.kind} {pending.params} but the "
                                           f"run asked for {kind} {params}")
            else:
                pending = self._enqueue(kind, params)
            self._waiting += 1  # the producer makes it whatever the budget (see _run)
            self._wake.set()
            try:
                value = await pending.value
            finally:
                self._waiting -= 1
        self._ahead -= _elements(value)
        self._wake.set()
        return value

    @contextmanager
    def recording(self):
        """Yields the list of requests made inside the block: a run's plan."""
        plan: list[Request] = []
        self._recorders.append(plan)
        try:
            yield plan
        finally:
            self._recorders.remove(plan)

    async def stop(self) -> None:
        if self._producer is not None:
            self._producer.cancel()
            await asyncio.gather(self._producer, return_exceptions=True)
            self._producer = None

    # ---- the producer --------------------------------------------------------------------

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _enqueue(self, kind: str, params: dict) -> _Pending:
        self._raise_failure()
        spec = KINDS.get(kind)
        if spec is None:
            raise ValueError(f"unknown correlation kind {kind!r}")
        spec.validate(params)
        value = asyncio.get_running_loop().create_future()
        value.add_done_callback(lambda done: done.cancelled() or done.exception())  # no warning
        pending = _Pending(kind, params, spec.elements(params), value)
        self._queue.append(pending)
        self._last = pending
        if self._producer is None:
            self._producer = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()
        return pending

    def _next_batch(self) -> list[_Pending]:
        """Consecutive requests: at least one, then as many as fit in a batch and (unless a
        caller waits for everything) in what is left of the memory budget."""
        room = BATCH_ELEMENTS
        if not self._draining:
            room = min(room, self.budget_elements - self._ahead)
        batch = [self._queue.popleft()]
        total = batch[0].elements
        while (self._queue and len(batch) < BATCH_REQUESTS
               and total + self._queue[0].elements <= room):
            total += self._queue[0].elements
            batch.append(self._queue.popleft())
        return batch

    async def _wait_until(self, ready) -> None:
        while not ready():
            self._wake.clear()
            await self._wake.wait()

    async def _run(self) -> None:
        batch: list[_Pending] = []
        try:
            while True:
                await self._wait_until(lambda: bool(self._queue))
                # bounded memory, unless a caller waits: groups make later requests early, so
                # what is made and unused may be ahead of the request a caller waits for
                await self._wait_until(lambda: self._ahead < self.budget_elements
                                       or self._draining or self._waiting)
                batch = self._next_batch()
                # a group is made at its first member, which comes before the others
                firsts = [p for p in batch if p.group is None or p.group[0] is p]
                values = await self._produce([_request(p) for p in firsts])
                for pending, value in zip(firsts, values, strict=True):
                    for member, part in _parts(pending, value):
                        self._ahead += _elements(part)
                        member.value.set_result(part)
                batch = []
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # every waiting request fails with the cause
            self._failure = error
            for pending in [*batch, *self._queue]:
                if not pending.value.done():
                    pending.value.set_exception(error)

    # ---- named requests: one helper per kind, named as the kind (mpc.correlations) ----------
    # Each returns the kind's Part, typed here with the layouts of its arrays (mpc.shares).

    async def beaver_triples(self, shape) -> tuple[Additive, Additive, Additive]:
        return await self.get("beaver_triples", shape=_shape(shape))

    async def and_triples(self, shape) -> tuple[XorWords, XorWords, XorWords]:
        return await self.get("and_triples", shape=_shape(shape))

    async def and_monomials(self, shape, monomials: list[list[int]]
                            ) -> tuple[XorWords, XorWords]:
        """(masks, one row per variable; mask products, one row per set of variables)."""
        return await self.get("and_monomials", shape=_shape(shape), monomials=monomials)

    async def matrix_triples(self, m: int, k: int, n: int
                             ) -> tuple[Additive, Additive, Additive]:
        return await self.get("matrix_triples", dims=[m, k, n])

    async def dabits(self, count: int) -> tuple[XorBits, Additive]:
        return await self.get("dabits", shape=[count])

    async def bit_triples(self, count: int) -> BitTriple:
        return await self.get("bit_triples", shape=[count])

    async def bit_row_triples(self, rows: int, n: int) -> BitTriple:
        return await self.get("bit_row_triples", rows=rows, n=n)

    async def one_of_n(self, count: int, entries: int, sender: int, width: int = 1):
        """The sender's (entries,), or the receiver's (index, entry)."""
        return await self.get("one_of_n", shape=[count], entries=entries, sender=sender,
                              width=width)

    async def edabits(self, shape) -> tuple[XorWords, Additive]:
        return await self.get("edabits", shape=_shape(shape))

    async def truncation_pairs(self, shape, frac_bits: int
                               ) -> tuple[Additive, Additive, Additive]:
        """(r, msb(r), the low bits of r shifted: (r mod 2^63) >> frac_bits)."""
        return await self.get("truncation_pairs", shape=_shape(shape), frac_bits=frac_bits)

    async def truncated_triples(self, shape, frac_bits: int
                                ) -> tuple[Additive, Additive, Additive, Additive, Additive]:
        """(a, b, a * b + r, msb(r), the low bits of r shifted)."""
        return await self.get("truncated_triples", shape=_shape(shape), frac_bits=frac_bits)

    async def permutation_masks(self, n: int, columns: str, permuter: int):
        return await self.get("permutation_masks", n=n, columns=columns, permuter=permuter)

    async def row_mask(self, rows: int, columns: int) -> Additive:
        (mask,) = await self.get("row_mask", rows=rows, columns=columns)
        return mask

    async def masked_products(self, rows: list[int], columns: int
                              ) -> tuple[Additive, Additive, Additive, Additive]:
        """For rows of the latest row mask (in request order): b, b', A_b b and A_b^T b'."""
        return await self.get("masked_products", rows=rows, columns=columns)


def _shape(shape) -> list[int]:
    """A request's shape: a list of ints, as it travels to the dealer (msgpack)."""
    return list(np.atleast_1d(shape).tolist())
