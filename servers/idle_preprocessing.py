"""COTs made by the running servers whenever no job runs (OT mode, `idle_cots` in both configs).

Server 0 starts a session when its queue is empty (servers/job_queue.py) and server 1 follows
(PREPROCESS_START); a job queued on server 0 stops its side at once, and server 1 stops its
own when server 0 asks it to start that job. Each session has its own id, so a stale session
of server 1 (server 0 restarted) cannot talk to a new one. The session itself, and what a
session stopped midway leaves, is servers/preprocessing.py's.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

from twofold.mpc.actions import PREPROCESS_START
from twofold.mpc.errors import PeerAborted
from twofold.mpc.link import StopSignal
from twofold.mpc.rpc import ServiceError
from twofold.mpc.service import RequestError
from twofold.mpc.session import Endpoints
from twofold.servers.preprocessing import preprocess_blocking

log = logging.getLogger("twofold.server")
IDLE_RETRY_S = 60.0  # a failed idle-time preprocessing session is tried again after this


class IdlePreprocessing:
    """One server's side of idle-time sessions. `running` holds the jobs running on this
    server (none may run beside a session); `call_peer(header)` asks the other server."""

    def __init__(self, endpoints: Endpoints, target: int, running: dict, spawn,
                 call_peer: Callable[[dict], Awaitable[dict]]):
        self.endpoints = endpoints
        self.target = target  # COTs per direction the store should hold (idle_cots)
        self.running = running
        self.spawn = spawn
        self.call_peer = call_peer
        self.session: StopSignal | None = None  # the session in progress, to stop it

    @property
    def party(self) -> int:
        return self.endpoints.party_id

    def stop(self) -> bool:
        """Stop the session in progress, if any; whether there was one."""
        if self.session is None:
            return False
        self.session.set()
        return True

    async def fill(self, jobs_queued: asyncio.Event) -> bool:
        """Server 0: one session with server 1, stopped when a job is queued. False if it
        failed (to be retried)."""
        session_id = f"idle-{uuid.uuid4().hex}"
        status = await self._ask_to_follow(session_id, jobs_queued)
        if status != "started":
            if status == "off":
                log.warning("server 1 makes no COTs while idle (idle_cots = 0 in its config)")
                return True
            log.warning("idle preprocessing not started: server 1 answered %.200s", status)
            return False
        cancel = self._begin()
        stop_for_jobs = asyncio.create_task(jobs_queued.wait())
        stop_for_jobs.add_done_callback(lambda _: cancel.set())
        try:
            return await self._session(cancel, session_id)
        finally:
            stop_for_jobs.cancel()

    async def _ask_to_follow(self, session_id: str, jobs_queued: asyncio.Event
                             ) -> str | None:
        """Server 1's answer to a new session; while it is busy ending a stale one (this
        server restarted), asked again until the timeout or a job arrives."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.endpoints.timeout_s
        while True:
            try:
                response = await self.call_peer({"action": PREPROCESS_START,
                                                 "session_id": session_id})
                status = response.get("status")
            except ServiceError as error:
                status = str(error)
            if status != "busy" or loop.time() >= deadline or jobs_queued.is_set():
                return status
            await asyncio.sleep(0.2)

    def follow(self, session_id: str) -> dict:
        """Server 1: server 0 starts a session."""
        if self.party != 1:
            raise RequestError("server 0 starts idle preprocessing; it follows no one")
        if not self.target:
            return {"status": "off"}
        if self.stop() or self.running:  # a stale session (server 0 has moved on), or a job
            return {"status": "busy"}
        self.spawn(self._session(self._begin(), session_id))
        return {"status": "started"}

    def _begin(self) -> StopSignal:
        self.session = StopSignal()
        return self.session

    async def _session(self, cancel: StopSignal, session_id: str) -> bool:
        """This server's side of a session, in a thread like a job's. False if it failed for
        another reason than a job arriving."""
        try:
            made = await asyncio.to_thread(preprocess_blocking, self.endpoints, self.target,
                                           cancel, session_id)
            log.info("made %d COTs per direction while idle", made)
            return True
        except Exception as error:  # the session is over; whole batches stay stored
            if cancel.is_set():
                log.info("idle preprocessing stopped for a job")
                return True
            if self.party == 1 and isinstance(error, PeerAborted):  # server 0 logs why
                log.info("idle preprocessing ended by server 0: %s", error)
                return True
            log.warning("idle preprocessing failed: %s", error)
            return False
        finally:
            self.session = None
