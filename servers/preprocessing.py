"""COTs made ahead of jobs (OT mode), kept in each server's store for later jobs to use first.

Two ways, never at once (mpc.ot.store.exclusive): `twofold server preprocess` on both hosts
while their servers are stopped, or the running servers themselves whenever no job runs
(`idle_cots` in both configs; server 0 starts a session, server 1 follows, and a job that
arrives stops it at once). A session stopped midway leaves whole batches only; a
batch only one server finished is deleted unused by the next session or job.
"""

from __future__ import annotations

import asyncio
import dataclasses

from twofold.mpc.link import StopSignal
from twofold.mpc.ot.store import CotStore, fill
from twofold.mpc.session import Endpoints, open_party

SESSION_ID = "twofold-preprocess"


async def preprocess(endpoints: Endpoints, target: int, cancel: StopSignal | None = None,
                     session_id: str = SESSION_ID) -> int:
    """One preprocessing session with the peer, until both stores hold `target` COTs per
    direction (the smaller of the two servers' targets); returns the COTs made per direction.
    Setting `cancel` stops it at once. Running servers give each session its own id, so that a
    peer's stale session (its partner restarted) cannot talk to a new one."""
    if endpoints.cot_store is None:
        raise ValueError("preprocessing fills the COT store of correlations = \"ot\"")
    fresh_only = dataclasses.replace(endpoints, cot_store=None)  # never consumes the store
    async with open_party(fresh_only, session_id, cancel=cancel) as party:
        return await fill(party.corr, CotStore(endpoints.cot_store), target)


def preprocess_blocking(endpoints: Endpoints, target: int, cancel: StopSignal,
                        session_id: str) -> int:
    """preprocess() in this thread's own event loop (a server runs it beside its own loop)."""
    return asyncio.run(preprocess(endpoints, target, cancel, session_id))
