"""Two servers' parties over real sockets, each running its own program, with a dealer or OT:
for tests of faults, timeouts and what each side ends with."""

import asyncio
import time
import uuid

import numpy as np

from tests.support.harness import free_address, keypair
from twofold.mpc.dealer import Dealer
from twofold.mpc.protocols.arithmetic import mul
from twofold.mpc.ring import U64
from twofold.mpc.session import Endpoints, open_party

TIMEOUT = 1.5


async def two_parties(program0, program1, *, keys1_override=None, jobs=None, dealer_up=True,
                      correlations=("dealer", "dealer"), timeout_s=TIMEOUT, stop0=None):
    """Run one program per server; returns each side's result or exception."""
    dealer_keys, keys0, keys1 = keypair(), keypair(), keypair()
    dealer = Dealer(dealer_keys, (keys0.public, keys1.public), "tcp://127.0.0.1:*")
    task = None
    if dealer_up:
        ready = asyncio.Event()
        task = asyncio.create_task(dealer.serve(ready))
        await ready.wait()
    else:
        dealer.address = free_address()
    peer = free_address()
    jobs = jobs or [uuid.uuid4().hex] * 2
    own_keys = [keys0, keys1_override or keys1]
    publics = [keys1.public, keys0.public]

    async def one(party_id, program):
        ends = Endpoints(party_id, own_keys[party_id], publics[party_id], peer,
                         dealer_keys.public, dealer.address, timeout_s, correlations[party_id])
        async with open_party(ends, jobs[party_id],
                              cancel=stop0 if party_id == 0 else None) as party:
            return await program(party)

    try:
        return await asyncio.gather(one(0, program0), one(1, program1), return_exceptions=True)
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def multiply(party, n=8):
    x = party.public(np.arange(n, dtype=U64))
    return await mul(party, x, x)


def run_timed(coroutine):
    start = time.monotonic()
    results = asyncio.run(coroutine)
    return results, time.monotonic() - start
