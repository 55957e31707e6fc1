"""`twofold server run`: one compute server's long-running process.

It listens on one CurveZMQ service socket (mpc/service.py) whose ZAP handler admits only the
clients in its registry (owners and recipients) and the peer server. Owners upload tables
there (servers/uploads.py); clients submit jobs, ask their status and fetch outputs
(servers/job_queue.py, servers/admission.py); the peer confirms uploads, starts checks of
their values (servers/check_queue.py), starts and fails jobs, and idle-time preprocessing
sessions (servers/idle_preprocessing.py). The action table
below is every request a server answers: who may ask, what it reads, and which handler runs.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import nullcontext
from functools import partial
from typing import cast

import numpy as np
import zmq.asyncio

from twofold.mpc.actions import (
    ACTIVATE,
    AUDIT_LOG,
    BEGIN,
    BUDGET,
    CHECK_START,
    CHUNK,
    COMMIT,
    FETCH_OUTPUT,
    HELLO,
    JOB_ABANDON,
    JOB_CANCEL,
    JOB_EXPLAIN,
    JOB_START,
    JOB_STATUS,
    JOB_STOP,
    JOB_SUBMIT,
    PEER_CHECK,
    PREPROCESS_START,
    SCHEMA,
    STATUS,
    TABLES,
    WITHDRAW,
    WITHDRAW_END,
)
from twofold.mpc.ot.store import exclusive
from twofold.mpc.rpc import ServiceClient, ServiceError
from twofold.mpc.service import (
    Action,
    Caller,
    Request,
    Service,
    caller_name,
    header_field,
    received_arrays,
    text,
    whole_header,
)
from twofold.owners.schema import Schema, load_schema
from twofold.servers.admission import Admission
from twofold.servers.audit import Audit
from twofold.servers.check_queue import CheckQueue
from twofold.servers.config import ServerConfig
from twofold.servers.idle_preprocessing import IdlePreprocessing
from twofold.servers.job_queue import JobQueue, named_job
from twofold.servers.jobs import JobStore
from twofold.servers.storage import Storage, UploadRecord, check_id, check_job_name
from twofold.servers.uploads import Uploads
from twofold.servers.withdrawal import Withdrawal

log = logging.getLogger("twofold.server")
MAX_FRAME_BYTES = 1 << 24  # inbound frames above this drop the client (upload chunks are 1 MiB)
MAX_MESSAGE_FRAMES = 1 + 1024  # a header and frames of shares: an upload chunk of 1024 columns
MAX_MESSAGE_BYTES = 1 << 30  # in all: such a chunk at 1 MiB a column
CLIENT, PEER = "client", "peer"  # owners, analysts and recipients; the other server


def _hello() -> dict:
    return {}


def _ident(key: str, kind: str):
    """A header field that must be an id (servers.storage.check_id)."""
    return header_field(key, partial(check_id, kind))


def _job_name(request: Request) -> str:
    """A job as a client names it (an id, or submitter/id), checked."""
    value = request.header.get("job_id")
    check_job_name(value)
    return cast(str, value)  # checked: a str


class Server(Service):
    max_frame_bytes = MAX_FRAME_BYTES
    max_message_frames = MAX_MESSAGE_FRAMES
    max_message_bytes = MAX_MESSAGE_BYTES
    refusals = (ServiceError, ValueError)  # the peer's refusals; malformed fields and paths
    log = log

    def __init__(self, config: ServerConfig):
        self.config = config
        self.party = config.endpoints.party_id
        callers = {key: Caller(CLIENT, name) for name, key in config.clients.items()}
        callers[config.endpoints.peer_public] = Caller(PEER, f"server{1 - self.party}")
        super().__init__(config.endpoints.keys, config.listen, callers)
        self.schema: Schema = load_schema(config.schema_path)
        self.schema_text = config.schema_path.read_text()  # for analysts' SQL: it is public
        self.storage = Storage(config.data_dir)
        self.storage.remove_leftovers()
        self.jobs = JobStore(config.data_dir)
        self.audit = Audit(config.data_dir, config.signing_key)
        self.running: dict = {}  # jobs running here, by key (JobQueue's)
        self.peer: ServiceClient | None = None  # the other server's service, once serving
        self.idle = IdlePreprocessing(config.endpoints, config.idle_cots, self.running,
                                      self.spawn, self._call_peer)
        self.checks = CheckQueue(config.endpoints, self.schema, self.storage, config.data_dir,
                                 self.audit, self.running, self.idle, self.spawn,
                                 lambda: self.queue.queued.set(), self._call_peer)
        self.uploads = Uploads(self.party, self.schema, self.storage, config.data_dir,
                               self._call_peer, self.audit, config.quotas, self.checks.request)
        self.queue = JobQueue(config, self.schema, self.storage,
                              Admission(self.schema, self.storage, self.jobs, config.data_dir),
                              self.jobs, self.running, self.idle, self.spawn, self._call_peer,
                              self.audit, self.checks)
        self.withdrawal = Withdrawal(self.schema, self.storage, self.uploads, self.queue,
                                     self.audit)
        self.actions = self._action_table()

    def _action_table(self) -> dict[str, Action]:
        uploads, queue, idle, checks = self.uploads, self.queue, self.idle, self.checks
        withdrawal = self.withdrawal
        upload_id = _ident("upload_id", "upload id")
        return {
            HELLO: Action(_hello, (CLIENT, PEER)),  # a client's check of its key and address
            BEGIN: Action(uploads.begin, (CLIENT,), (caller_name, upload_id, whole_header)),
            CHUNK: Action(uploads.chunk, (CLIENT,),
                          (caller_name, upload_id, header_field("start"), received_arrays)),
            COMMIT: Action(uploads.commit, (CLIENT,), (caller_name, upload_id)),
            ACTIVATE: Action(uploads.activate, (CLIENT,), (caller_name, upload_id),
                             concurrent=True),  # waits for the peer's check
            STATUS: Action(uploads.status, (CLIENT,), (text("table"),)),
            BUDGET: Action(uploads.budget, (CLIENT,), (caller_name, text("table"))),
            SCHEMA: Action(self._schema, (CLIENT,), (caller_name,)),
            TABLES: Action(withdrawal.tables, (CLIENT,), (caller_name,)),
            WITHDRAW: Action(withdrawal.withdraw, (CLIENT,), (caller_name, text("table"),
                                                          _ident("withdrawal", "withdrawal id"))),
            WITHDRAW_END: Action(withdrawal.end, (CLIENT,), (caller_name, text("table"))),
            JOB_SUBMIT: Action(queue.submit, (CLIENT,),  # under one of the client's own ids
                               (caller_name, _ident("job_id", "job id"), text("spec")),
                               concurrent=True),  # as since the first queue; it waits for none
            JOB_EXPLAIN: Action(queue.explain, (CLIENT,), (caller_name, text("spec"))),
            JOB_STATUS: Action(queue.status, (CLIENT,), (caller_name, _job_name)),
            JOB_CANCEL: Action(queue.cancel, (CLIENT,), (caller_name, _job_name)),
            FETCH_OUTPUT: Action(queue.fetch, (CLIENT,), (caller_name, _job_name)),
            AUDIT_LOG: Action(self._audit_view, (CLIENT,), (caller_name,)),
            PEER_CHECK: Action(uploads.peer_check, (PEER,),
                               (header_field("record", UploadRecord.from_message),)),
            CHECK_START: Action(checks.follow, (PEER,),
                                (text("owner"), upload_id, text("digest"),
                                 _ident("session_id", "session id"))),
            JOB_START: Action(queue.start_as_follower, (PEER,),
                              (named_job, text("spec_hash"), header_field("quotas"))),
            JOB_STOP: Action(queue.stop_as_follower, (PEER,), (named_job, text("reason"))),
            JOB_ABANDON: Action(queue.abandon, (PEER,), (named_job, text("error"))),
            PREPROCESS_START: Action(idle.follow, (PEER,), (_ident("session_id", "session id"),)),
        }

    def _schema(self, client: str) -> dict:
        """What a client translating SQL needs: the schema, and its own name (the default
        recipient)."""
        return {"schema": self.schema_text, "client": client}

    async def serve(self, ready: asyncio.Event | None = None) -> None:
        store = self.config.endpoints.cot_store
        with exclusive(store) if store is not None else nullcontext():
            await super().serve(ready)

    def _started(self, context: zmq.asyncio.Context) -> None:
        # the peer is known to exist: a busy one gets the whole timeout for its first hello
        endpoints = self.config.endpoints
        self.peer = ServiceClient(context, endpoints.keys, endpoints.peer_public,
                                  self.config.peer_service_address, f"server {1 - self.party}",
                                  endpoints.timeout_s, handshake_s=endpoints.timeout_s)
        if self.party == 0:
            self.spawn(self.queue.schedule())

    def _stopping(self) -> None:
        self.queue.stop()  # a job thread stops at once
        self.idle.stop()
        if self.peer is not None:
            self.peer.close()
        self.storage.close()
        self.audit.close()

    def _audit_view(self, client: str):
        """The audit log as this client may see it: JSON lines as bytes (a log outgrows any
        header)."""
        view = self.audit.view(client)
        return {}, [np.frombuffer(view, np.uint8)]

    async def _call_peer(self, header: dict) -> dict:
        if self.peer is None:
            raise ServiceError("the other server is called once this one serves")
        response, _ = await self.peer.call(header)
        return response
