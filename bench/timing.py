"""Benchmark runs with their correlations made before the online phase.

The correlations a protocol consumes depend only on public sizes, so a run's plan (the list of
requests it made) can be recorded once and made ahead of the next run of the same shape
(CorrelationSource.prefetch). Each run gets fresh correlations: nothing is ever reused.
"""

from __future__ import annotations

import numpy as np


async def timed_runs(party, name: str, repeat: int, run, prefetch: bool = True) -> None:
    """Benchmark `run()` (a coroutine factory) `repeat` times, each in stage "name#rep".

    With prefetch, a warm-up run records the plan; each timed run first has its own fresh
    correlations for that plan made (offline), meets the peer, then runs (online). Without it
    the run makes them as it goes, and its figure to read is online plus offline."""
    source = party.corr
    plan = None
    if prefetch:
        with party.stage(f"{name}#warmup"), source.recording() as plan:
            await run()
    for rep in range(repeat):
        if plan is not None:
            with party.stage(f"{name}#{rep}"), party.accounting.offline():
                source.prefetch(plan)
                await source.produced()
            with party.stage("sync"):
                await party.link.exchange(np.zeros(1, np.uint64))
        with party.stage(f"{name}#{rep}"):
            await run()
