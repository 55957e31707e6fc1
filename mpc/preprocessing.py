"""Preprocessing: fetch a run's correlations before its online phase.

The correlations a protocol consumes depend only on public sizes, so a run's plan (the list of
kinds and parameters it asked for) can be recorded once and fetched ahead of the next run of
the same shape. Served correlations are never reused: each is handed out once, in order.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from mpc.dealer import CorrelationSource
from mpc.errors import ProtocolMismatch

Plan = list[tuple[str, dict]]


class Preprocessing(CorrelationSource):
    """Wraps a source: records every request, and serves preprocessed ones first."""

    def __init__(self, inner: CorrelationSource):
        self.inner = inner
        self.requests: Plan = []
        self._ready: deque = deque()

    async def preprocess(self, plan: Plan) -> None:
        for kind, params in plan:
            self._ready.append((kind, params, await self.inner.get(kind, **params)))

    async def get(self, kind: str, **params):
        self.requests.append((kind, params))
        if not self._ready:
            return await self.inner.get(kind, **params)
        planned_kind, planned_params, value = self._ready.popleft()
        if (planned_kind, planned_params) != (kind, params):
            raise ProtocolMismatch(f"preprocessed {planned_kind} {planned_params} but the run "
                                   f"asked for {kind} {params}")
        return value


async def timed_runs(party, name: str, repeat: int, run, prefetch: bool = True) -> None:
    """Benchmark `run()` (a coroutine factory) `repeat` times, each in stage "name#rep".

    With prefetch, a warm-up run records the plan; each timed run first fetches its own fresh
    correlations for that plan (offline), meets the peer, then runs (online). Without it the
    run fetches as it goes, and its figure to read is online plus offline."""
    source = party.corr
    plan = None
    if prefetch:
        start = len(source.requests)
        with party.stage(f"{name}#warmup"):
            await run()
        plan = source.requests[start:]
    for rep in range(repeat):
        if plan is not None:
            with party.stage(f"{name}#{rep}"):
                await source.preprocess(plan)
            with party.stage("sync"):
                await party.link.exchange(np.zeros(1, np.uint64))
        with party.stage(f"{name}#{rep}"):
            await run()
