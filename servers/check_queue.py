"""When the servers check an upload's values (servers/upload_checks.py), and what follows.

A version becomes live only after both servers have checked it. An owner's activation
(servers/uploads.py) asks server 0 for a check of a stored version and is answered
"checking"; the owner asks again until the version is ready or refused. The servers run one
session at a time, so server 0 runs checks in its scheduler (servers/job_queue.py), one at a
time and before queued jobs, and server 1 follows (CHECK_START) as it follows a job: never
beside a job or an idle-time session of its own. Both servers learn the same bit and each
marks its copy: ready and live, or refused ("invalid": files removed, never usable).

A check cut short (a crash, the peer or the dealer gone) marks nothing: the version stays
stored and not live; the owner's next activation hears why and runs the check again from the
start, which opens the same bit, since it depends on the shares alone.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from twofold.mpc.accounting import Accounting
from twofold.mpc.actions import CHECK_START
from twofold.mpc.link import StopSignal
from twofold.mpc.ring import FixedPoint
from twofold.mpc.rpc import ServiceError
from twofold.mpc.service import RequestError
from twofold.mpc.session import Endpoints, open_party
from twofold.owners.schema import Schema
from twofold.servers.audit import Audit
from twofold.servers.idle_preprocessing import IdlePreprocessing
from twofold.servers.storage import Storage, UploadRecord
from twofold.servers.upload_checks import agree_on_upload, upload_is_valid

log = logging.getLogger("twofold.server")
CHECKABLE = ("stored", "ready")  # a ready copy is checked again if the peer's copy is not


def _mark(storage: Storage, audit: Audit, record: UploadRecord, columns: dict,
          valid: bool) -> None:
    """Live (a new live version logged before the owner hears of it), or refused."""
    if not valid:
        storage.reject(record, "invalid")
    elif not storage.make_live(record):
        audit.upload(record, columns)


def check_blocking(endpoints: Endpoints, data_dir: Path, schema: Schema, audit: Audit,
                   record: UploadRecord, session_id: str, accounting: Accounting,
                   cancel: StopSignal) -> bool:
    """One server's side of a check, in its own thread and event loop: whether the upload's
    values are valid, once this server has marked its copy. Server 1 marks before the
    session's closing handshake and server 0 after it, so a version that server 0 (whom the
    owner asks first) shows ready or invalid is so on server 1 too, unless server 1 failed."""

    async def main() -> bool:
        storage = Storage(data_dir)
        try:
            columns = storage.load(record)
            async with open_party(endpoints, session_id, FixedPoint(schema.fixed.frac_bits),
                                  accounting, cancel) as party:
                await agree_on_upload(party, record)
                valid = await upload_is_valid(party, schema, schema.table(record.table_name),
                                              columns)
                if party.id == 1:
                    _mark(storage, audit, record, columns, valid)
            if endpoints.party_id == 0:
                _mark(storage, audit, record, columns, valid)
            return valid
        finally:
            storage.close()

    return asyncio.run(main())


class CheckQueue:
    """`audit` logs each version made live; `running` holds what runs on this server (jobs,
    checks) by key; `wake()` wakes server 0's scheduler; `call_peer(header)` asks the other
    server."""

    def __init__(self, endpoints: Endpoints, schema: Schema, storage: Storage, data_dir: Path,
                 audit: Audit, running: dict, idle: IdlePreprocessing, spawn,
                 wake: Callable[[], None], call_peer: Callable[[dict], Awaitable[dict]]):
        self.endpoints = endpoints
        self.schema = schema
        self.storage = storage
        self.data_dir = data_dir
        self.audit = audit
        self.running = running
        self.idle = idle
        self.spawn = spawn
        self.wake = wake
        self.call_peer = call_peer
        self.pending: dict[tuple[str, str], UploadRecord] = {}  # server 0's, in request order
        self.failed: dict[tuple[str, str], str] = {}  # server 0's: why a check did not end

    def request(self, record: UploadRecord) -> str | None:
        """Server 0: check this upload when no job runs (once, however often asked); returns
        why its last check failed, if it did and nobody was told yet."""
        if self.endpoints.party_id != 0:
            return None
        key = (record.owner, record.upload_id)
        self.pending.setdefault(key, record)
        self.wake()
        return self.failed.pop(key, None)

    async def run_pending(self) -> None:
        """Server 0's scheduler: every requested check, one at a time, with server 1."""
        while self.pending:
            key, record = next(iter(self.pending.items()))
            try:
                await self._lead(record)
            finally:
                self.pending.pop(key, None)

    async def _lead(self, record: UploadRecord) -> None:
        session_id = f"check-{uuid.uuid4().hex}"
        status = await self._ask_to_follow(record, session_id)
        if status != "started":
            log.warning("upload %s/%s not checked: server 1 answered %.200s", record.owner,
                        record.upload_id, status)
            self.failed[record.owner, record.upload_id] = f"server 1 answered {status}"[:300]
            return
        await self._run(record, session_id)

    async def _ask_to_follow(self, record: UploadRecord, session_id: str) -> str:
        """Server 1's answer; while it is busy (a job or session ending), asked again until
        the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.endpoints.timeout_s
        while True:
            try:
                response = await self.call_peer({"action": CHECK_START, "owner": record.owner,
                                                 "upload_id": record.upload_id,
                                                 "digest": record.digest,
                                                 "session_id": session_id})
                status = str(response.get("status"))
            except ServiceError as error:
                status = str(error)
            if status != "busy" or loop.time() >= deadline:
                return status
            await asyncio.sleep(0.2)

    def follow(self, owner: str, upload_id: str, digest: str, session_id: str) -> dict:
        """Server 1: server 0 starts a check of an upload both hold."""
        if self.endpoints.party_id != 1:
            raise RequestError("server 0 starts upload checks; it follows no one")
        record = self.storage.lookup(owner, upload_id)
        if record is None or record.digest != digest:
            return {"status": "missing"}
        if record.state not in CHECKABLE:
            return {"status": f"its copy is {record.state}"}
        if self.idle.stop() or self.running:  # server 0 has stopped its side: stop ours too
            return {"status": "busy"}
        self.spawn(self._run(record, session_id))
        return {"status": "started"}

    async def _run(self, record: UploadRecord, session_id: str) -> None:
        """This server's side, which makes the version live or refuses it here."""
        key = ("", f"{record.owner}/{record.upload_id}")  # no job's submitter is empty
        accounting, cancel = Accounting(), StopSignal()
        self.running[key] = (accounting, cancel)
        try:
            valid = await asyncio.to_thread(check_blocking, self.endpoints, self.data_dir,
                                            self.schema, self.audit, record, session_id,
                                            accounting, cancel)
        except Exception as error:  # the version stays stored; the next activation retries
            log.warning("checking upload %s/%s failed: %s", record.owner, record.upload_id,
                        error)
            if self.endpoints.party_id == 0:
                self.failed[record.owner, record.upload_id] = f"{error}"[:300]
            return
        finally:
            del self.running[key]
        if not valid:
            log.warning("upload %s/%s of table %s refused: values outside the schema",
                        record.owner, record.upload_id, record.table_name)
