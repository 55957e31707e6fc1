"""Run a two-party program over real CurveZMQ sockets, in one event loop, with correlated
randomness from any source: a real dealer, OT between the two servers, or the dealer with the
run's plan recorded and made ahead (as benchmarks do). Protocol tests take the `source` fixture
(tests/conftest.py) and run once per source, one suite over the matrix.

Test-only helpers: numpy's seeded generator makes reproducible plaintext inputs here, and
`shares_of` / `reconstruct` stand in for data owners and recipients.
"""

from __future__ import annotations

import asyncio
import socket
import uuid

import numpy as np
import zmq

from twofold.mpc.accounting import Accounting
from twofold.mpc.curve import KeyPair
from twofold.mpc.dealer import Dealer
from twofold.mpc.ring import U64
from twofold.mpc.session import Endpoints, open_party
from twofold.owners.policy import unrestricted

OPEN_POLICY = unrestricted()  # tests of results, not rules


def keypair() -> KeyPair:
    public, secret = zmq.curve_keypair()
    return KeyPair(public=public, secret=secret)


def free_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def shares_of(values, rng: np.random.Generator):
    """Additive shares of integer or ring values (a test stands in for a data owner)."""
    values = np.asarray(values)
    values = values if values.dtype == U64 else values.astype(np.int64).view(U64)
    mask = rng.integers(0, 2**64, size=values.shape, dtype=U64, endpoint=False)
    return values - mask, mask


def xor_shares_of(values, rng: np.random.Generator):
    values = np.asarray(values, U64)
    mask = rng.integers(0, 2**64, size=values.shape, dtype=U64, endpoint=False)
    return values ^ mask, mask


def reconstruct(pair):
    first, second = pair
    if isinstance(first, (list, tuple)):
        return [reconstruct(item) for item in zip(first, second, strict=True)]
    return np.asarray(first, U64) + np.asarray(second, U64)


SOURCES = ("dealer", "ot", "prefetched")  # "prefetched": dealer, plan recorded and made ahead


async def _run(program, args0, args1, timeout_s, accountings, source, cot_stores):
    dealer_keys, keys0, keys1 = keypair(), keypair(), keypair()
    dealer = Dealer(dealer_keys, (keys0.public, keys1.public), "tcp://127.0.0.1:*")
    ready = asyncio.Event()
    dealer_task = asyncio.create_task(dealer.serve(ready))
    await ready.wait()
    peer_address = free_address()
    job = uuid.uuid4().hex
    correlations = "ot" if source == "ot" else "dealer"
    ends = [Endpoints(0, keys0, keys1.public, peer_address, dealer_keys.public, dealer.address,
                      timeout_s, correlations, cot_stores[0]),
            Endpoints(1, keys1, keys0.public, peer_address, dealer_keys.public, dealer.address,
                      timeout_s, correlations, cot_stores[1])]

    async def one(party_id, args):
        async with open_party(ends[party_id], job, accounting=accountings[party_id]) as party:
            if source != "prefetched":
                return await program(party, *args)
            with party.corr.recording() as plan:  # a rehearsal records the plan...
                await program(party, *args)
            party.corr.prefetch(plan)  # ...made ahead for the run that counts
            return await program(party, *args)

    try:
        return await asyncio.gather(one(0, args0), one(1, args1))
    finally:
        dealer_task.cancel()
        await asyncio.gather(dealer_task, return_exceptions=True)


def run_pair(program, args0=(), args1=(), timeout_s: float = 20.0, record_sizes: bool = False,
             source: str = "dealer", cot_stores=(None, None)):
    """Both servers' results of program(party, *args); with record_sizes, also the list of
    (stream, size) of the messages each server sent. cot_stores: each server's folder of COTs
    made in idle time (OT only)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}")
    accountings = [Accounting(message_sizes=[] if record_sizes else None) for _ in range(2)]
    results = asyncio.run(_run(program, args0, args1, timeout_s, accountings, source,
                               cot_stores))
    if record_sizes:
        return results, [acc.message_sizes for acc in accountings]
    return results
