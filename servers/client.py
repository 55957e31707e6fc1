"""What analysts and recipients call: submit a job to both servers, ask its status, fetch and
reveal its output. Each server is reached over CurveZMQ with its public key pinned."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager

import zmq.asyncio

from mpc.curve import KeyPair
from mpc.rpc import ServiceClient, ServiceUnreachable
from owners.upload import ServerAddress
from servers.outputs import Output
from twofold.results import reveal


@asynccontextmanager
async def connected(keys: KeyPair, servers: tuple[ServerAddress, ServerAddress],
                    timeout_s: float):
    context = zmq.asyncio.Context()
    clients = [ServiceClient(context, keys, s.public_key, s.address, f"server {p}", timeout_s)
               for p, s in enumerate(servers)]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()
        context.term()


async def submit_job(keys, servers, spec_text: str, job_id: str | None = None,
                     timeout_s: float = 60.0) -> str:
    """Send the spec to both servers; returns the job id once both have queued it."""
    job_id = job_id or uuid.uuid4().hex
    async with connected(keys, servers, timeout_s) as clients:
        await asyncio.gather(*(c.call({"action": "job_submit", "job_id": job_id,
                                       "spec": spec_text}) for c in clients))
    return job_id


async def job_status(keys, servers, job_id: str, timeout_s: float = 60.0) -> list[dict]:
    """Each server's view of the job. A server that does not answer shows as state
    "unreachable" with the reason, so what the other one says is still reported."""
    async with connected(keys, servers, timeout_s) as clients:
        replies = await asyncio.gather(*(c.call({"action": "job_status", "job_id": job_id})
                                         for c in clients), return_exceptions=True)
    statuses = []
    for reply in replies:
        if isinstance(reply, ServiceUnreachable):
            statuses.append({"state": "unreachable", "stage": "", "error": str(reply),
                             "costs": {}})
        elif isinstance(reply, BaseException):
            raise reply
        else:
            statuses.append(reply[0])
    return statuses


async def cancel_job(keys, servers, job_id: str, timeout_s: float = 60.0) -> list[dict]:
    """Stop a job on both servers: a queued job never starts, a running one stops at its next
    message and releases nothing."""
    async with connected(keys, servers, timeout_s) as clients:
        replies = await asyncio.gather(*(c.call({"action": "job_cancel", "job_id": job_id})
                                         for c in clients))
    return [reply for reply, _ in replies]


async def wait_for_job(keys, servers, job_id: str, timeout_s: float = 600.0,
                       poll_s: float = 0.2, on_status=None) -> list[dict]:
    """Poll until both servers report the job done or failed (or the timeout passes)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        statuses = await job_status(keys, servers, job_id)
        if on_status is not None:
            on_status(statuses)
        if all(s["state"] in ("done", "failed") for s in statuses):
            return statuses
        if asyncio.get_running_loop().time() > deadline:
            return statuses
        await asyncio.sleep(poll_s)


async def fetch_outputs(keys, servers, job_id: str, timeout_s: float = 60.0) -> list[Output]:
    """Both servers' stored outputs of a job, shares and all (recipients only)."""
    async with connected(keys, servers, timeout_s) as clients:
        replies = await asyncio.gather(*(c.call({"action": "fetch_output", "job_id": job_id})
                                         for c in clients))
    return [Output.from_meta(reply["meta"], arrays) for reply, arrays in replies]


async def fetch_and_reveal(keys, servers, job_id: str, timeout_s: float = 60.0) -> dict:
    """Both servers' output shares, reconstructed and decoded on this machine only."""
    return reveal(*await fetch_outputs(keys, servers, job_id, timeout_s)).data
