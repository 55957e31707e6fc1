"""`twofold server run`: one compute server's long-running process.

It listens on one CurveZMQ service socket whose ZAP handler admits only the clients in its
registry (owners and recipients) and the peer server. Owners upload tables there; clients
submit jobs, ask their status and fetch outputs; the peer confirms uploads and starts jobs.

A table version becomes ready (usable) only when both servers hold it durably with the same
upload id, table, row count, schema hash and content digest; activating it (again) makes it the
table's live version on both. Jobs run one at a time, in the order server 0 starts them; each
runs in a thread of its own so this loop keeps answering. In OT mode with idle_cots, the two
servers make COTs for later jobs whenever no job runs (servers.preprocessing).

Every request is refused with an error reply, never a crash, whatever it holds: fields are
checked before use, and anything no check foresaw is logged and refused too.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import nullcontext
from dataclasses import asdict

import zmq
import zmq.asyncio

from mpc import wire
from mpc.accounting import Accounting
from mpc.curve import KeyAuthenticator, make_server_socket
from mpc.errors import PeerAborted
from mpc.link import StopSignal
from mpc.ot.store import exclusive
from mpc.outputs import Output
from mpc.rpc import ServiceClient, ServiceError
from owners.keys import EXACT_LIMIT
from owners.policy import Policy, PolicyError
from owners.schema import Schema, load_schema
from servers.budget import BudgetLedger, check_budgets
from servers.config import ServerConfig
from servers.exposure import analyze
from servers.jobs import JobState, JobStore, run_job_blocking
from servers.jobspec import JobSpec, check_sizes, parse_job_spec
from servers.preprocessing import preprocess_blocking
from servers.rules import check_job, review
from servers.storage import StagedUpload, Storage, UploadRecord, check_id, check_job_name

log = logging.getLogger("twofold.server")
MAX_FRAME_BYTES = 1 << 24  # inbound frames above this drop the client (upload chunks are 1 MiB)
MAX_ERROR_CHARS = 2000  # error replies stay far below the clients' header limit
MAX_UPLOADS_IN_PROGRESS = 4  # per owner; a newer begin abandons the oldest
IDLE_RETRY_S = 60.0  # a failed idle-time preprocessing session is tried again after this


class RequestError(Exception):
    """A refused request; the message goes back to the client."""


def _text(header: dict, key: str) -> str:
    value = header.get(key)
    if not isinstance(value, str):
        raise RequestError(f"'{key}' must be a string")
    return value


def _naming(state: JobState) -> dict:
    """A job as the servers name it to each other: its submitter and its id."""
    return {"submitter": state.submitter, "job_id": state.job_id}


def _job_key(header: dict) -> tuple[str, str]:
    """The job a message from the peer names (see _naming)."""
    return (check_id("submitter", header.get("submitter")),
            check_id("job id", header.get("job_id")))


class Server:
    def __init__(self, config: ServerConfig):
        self.config = config
        self.party = config.endpoints.party_id
        self.schema: Schema = load_schema(config.schema_path)
        self.storage = Storage(config.data_dir)
        self.storage.remove_leftovers()
        self.staged: dict[tuple[str, str], StagedUpload] = {}  # by (owner, upload id)
        self.jobs = JobStore(config.data_dir)
        self.running: dict[tuple[str, str], tuple[Accounting, StopSignal]] = {}  # by job key
        self.preprocessing: StopSignal | None = None  # idle-time session's cancel
        self.address: str | None = None
        self._tasks: set[asyncio.Task] = set()
        self._queued = asyncio.Event()

    # ---- the service loop ------------------------------------------------------------------

    async def serve(self, ready: asyncio.Event | None = None) -> None:
        store = self.config.endpoints.cot_store
        with exclusive(store) if store is not None else nullcontext():
            await self._serve(ready)

    async def _serve(self, ready: asyncio.Event | None) -> None:
        context = zmq.asyncio.Context()
        names = {key: f"client:{name}" for name, key in self.config.clients.items()}
        names[self.config.endpoints.peer_public] = f"server{1 - self.party}"
        authenticator = KeyAuthenticator(context, names)
        authenticator.start()
        self.socket = context.socket(zmq.ROUTER)
        self.socket.linger = 0
        self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        make_server_socket(self.socket, self.config.endpoints.keys)
        self.socket.bind(self.config.listen)
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        # the peer is known to exist: a busy one gets the whole timeout for its first hello
        timeout_s = self.config.endpoints.timeout_s
        self.peer = ServiceClient(context, self.config.endpoints.keys,
                                  self.config.endpoints.peer_public,
                                  self.config.peer_service_address, f"server {1 - self.party}",
                                  timeout_s, handshake_s=timeout_s)
        if ready is not None:
            ready.set()
        if self.party == 0:
            self._spawn(self._schedule())
        try:
            while True:
                frames = await self.socket.recv_multipart(copy=False)
                identity, request = frames[0].bytes, frames[1:]
                client = request[0].get("User-Id")
                try:
                    header, arrays = wire.decode(request)
                except Exception as error:  # whatever the bytes, the loop keeps serving
                    log.warning("refused a malformed message from %s: %s", client, error)
                    await self._send(identity, {"ok": False, "error": f"malformed message: "
                                                                      f"{error}"[:MAX_ERROR_CHARS]})
                    continue
                if header.get("action") in ("activate", "job_submit"):  # may wait for the peer
                    self._spawn(self._reply(identity, client, header, arrays))
                else:
                    await self._reply(identity, client, header, arrays)
        finally:
            for _, cancel in self.running.values():  # a job thread stops at once
                cancel.set()
            if self.preprocessing is not None:
                self.preprocessing.set()
            for task in self._tasks:
                task.cancel()
            self.peer.close()
            authenticator.stop()
            self.socket.close(0)
            context.term()
            self.storage.close()

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reply(self, identity: bytes, client: str, header: dict, arrays) -> None:
        arrays_out = []
        action = header.get("action")
        try:
            response = await self._dispatch(client, header, arrays)
            if isinstance(response, tuple):
                response, arrays_out = response
            reply = {"ok": True, **response}
        except (RequestError, ServiceError, ValueError) as error:
            log.warning("refused %.40r from %s: %s", action, client, error)
            reply = {"ok": False, "error": str(error)[:MAX_ERROR_CHARS]}
        except Exception as error:  # an input no check foresaw: refuse it and keep serving
            log.exception("failed %.40r from %s", action, client)
            reply = {"ok": False, "error": f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]}
        # echo the request id: a client drops replies to requests it gave up on
        reply["rid"] = header.get("rid")
        await self._send(identity, reply, arrays_out)

    async def _send(self, identity: bytes, reply: dict, arrays=()) -> None:
        await self.socket.send_multipart([identity, *wire.encode(reply, arrays)], copy=False)

    async def _dispatch(self, client: str, header: dict, arrays) -> dict:
        action = header.get("action")
        if action == "hello":  # clients check their key and address with a short wait
            return {}
        if client.startswith("server"):
            if action == "peer_check":
                return {"status": self._peer_check(UploadRecord.from_message(header.get("record")))}
            if action == "job_start":
                return {"status": self._start_as_follower(_job_key(header),
                                                          _text(header, "spec_hash"))}
            if action == "job_abandon":
                return {"status": self._abandon(_job_key(header), _text(header, "error"))}
            if action == "preprocess_start":
                return {"status": self._preprocess_as_follower(
                    check_id("session id", header.get("session_id")))}
            raise RequestError(f"{client} may not {action!r:.40}")
        owner = client.removeprefix("client:")
        if action == "job_explain":
            return await self._job_explain(owner, header)
        if action in ("job_submit", "job_status", "job_cancel", "fetch_output"):
            check_job_name(header.get("job_id"))  # the handlers read checked fields
            if action == "job_submit":
                check_id("job id", header.get("job_id"))  # a client submits under its own ids
                _text(header, "spec")
            return await getattr(self, f"_{action}")(owner, header)
        if action == "budget":
            return self._budget(owner, _text(header, "table"))
        if action == "begin":
            return self._begin(owner, header)
        if action == "chunk":
            upload_id = check_id("upload id", header.get("upload_id"))
            self._owned_staged(owner, upload_id).append(header.get("start"), arrays)
            return {}
        if action == "commit":
            return self._commit(owner, check_id("upload id", header.get("upload_id")))
        if action == "activate":
            return await self._activate(owner, check_id("upload id", header.get("upload_id")))
        if action == "status":
            current = self.storage.current(_text(header, "table"))
            return {"current": current.as_message() if current else None}
        raise RequestError(f"unknown action {action!r:.40}")

    # ---- uploads ---------------------------------------------------------------------------

    def _begin(self, owner: str, header: dict) -> dict:
        upload_id = check_id("upload id", header.get("upload_id"))
        table = self.schema.table(_text(header, "table"))
        if table.owner != owner:
            raise RequestError(f"table {table.name} belongs to {table.owner}, not {owner}")
        if header.get("schema_hash") != self.schema.hash:
            raise RequestError("the owner's schema differs from the servers' schema")
        if header.get("columns") != table.stored_columns:
            raise RequestError(f"columns {header.get('columns')!r:.200} do not match table "
                               f"{table.name}")
        rows = header.get("rows")
        if not isinstance(rows, int) or isinstance(rows, bool) or not 0 < rows <= EXACT_LIMIT:
            raise RequestError(f"'rows' must be a whole number from 1 to {EXACT_LIMIT}")
        if table.rows is not None and rows != table.rows:
            raise RequestError(f"{rows} rows, the schema fixes {table.rows} for {table.name}")
        try:
            policy = Policy.from_json(_text(header, "policy"))
            policy.check_against(self.schema, table)
        except PolicyError as error:
            raise RequestError(f"malformed policy: {error}") from None
        record = UploadRecord(upload_id, table.name, owner, rows, self.schema.hash,
                              _text(header, "digest"), tuple(table.stored_columns),
                              policy.to_json())
        existing = self.storage.lookup(owner, upload_id)
        if existing is not None:
            if existing.state == "rejected":
                raise RequestError(f"upload {upload_id} was refused (the servers' copies "
                                   "differed); upload under another id")
            if existing.same_content(record):
                return {"status": "exists"}
            raise RequestError(f"upload id {upload_id} was already used for other content")
        old = self.staged.pop((owner, upload_id), None)
        if old is not None:  # a retried upload starts over
            old.abandon()
        in_progress = [key for key in self.staged if key[0] == owner]
        for key in in_progress[:len(in_progress) + 1 - MAX_UPLOADS_IN_PROGRESS]:
            log.warning("abandoning %s's upload %s: a newer one started", owner, key[1])
            self.staged.pop(key).abandon()  # each holds open files: keep them bounded
        self.staged[owner, upload_id] = self.storage.stage(record)
        return {"status": "send"}

    def _owned_staged(self, owner: str, upload_id: str) -> StagedUpload:
        staged = self.staged.get((owner, upload_id))
        if staged is None:
            raise RequestError(f"no upload {upload_id} in progress for {owner}")
        return staged

    def _commit(self, owner: str, upload_id: str) -> dict:
        staged = self._owned_staged(owner, upload_id)
        self.storage.commit(staged)
        del self.staged[owner, upload_id]
        return {"status": "stored"}

    async def _activate(self, owner: str, upload_id: str) -> dict:
        """Make the upload the live version of its table on both servers, once both hold the
        same; activating an earlier upload again brings it back."""
        record = self.storage.lookup(owner, upload_id)
        if record is None:
            raise RequestError(f"server {self.party} holds no upload {upload_id} from {owner}")
        if record.state == "rejected":
            raise RequestError(f"upload {upload_id} was refused: the servers' copies differ")
        response, _ = await self.peer.call({"action": "peer_check",
                                            "record": record.as_message()})
        status = response.get("status")
        if status == "missing":
            raise RequestError(f"server {1 - self.party} does not hold upload {upload_id} yet")
        if status == "mismatch":
            self.storage.reject(record)
            raise RequestError(f"servers 0 and 1 received different metadata for upload "
                               f"{upload_id}; both refused it")
        if status != "match":
            raise RequestError(f"server {1 - self.party} answered {status!r:.40}")
        return {"status": "ready", "was_live": self.storage.make_live(record)}

    def _peer_check(self, theirs: UploadRecord) -> str:
        mine = self.storage.lookup(theirs.owner, theirs.upload_id)
        if mine is None:
            return "missing"
        if mine.state == "rejected" or not mine.same_content(theirs):
            self.storage.reject(mine)
            return "mismatch"
        self.storage.make_live(mine)  # both hold it durably: it becomes (again) the live one
        return "match"

    # ---- jobs ------------------------------------------------------------------------------

    def _spec(self, state: JobState) -> JobSpec:
        return parse_job_spec(self.jobs.spec_text(*state.key), self.schema,
                              set(self.config.clients))

    async def _job_submit(self, client: str, header: dict) -> dict:
        job_id, text = header["job_id"], header["spec"]
        spec = parse_job_spec(text, self.schema, set(self.config.clients))
        existing = self.jobs.states.get((client, job_id))  # ids are per submitter
        if existing is not None:
            if existing.spec_hash != spec.hash:
                raise RequestError(f"job id {job_id} was already used for another spec")
            return {"state": existing.state, "spec_hash": spec.hash}
        model = self._admit(client, spec)
        self.jobs.add(JobState(job_id, spec.hash, client, list(spec.recipients), model=model),
                      text)
        self._queued.set()
        return {"state": "queued", "spec_hash": spec.hash}

    def _policies(self, spec: JobSpec) -> dict[str, Policy]:
        """The rules of the live version of every table the job reads."""
        missing = [name for name in spec.plan.tables if self.storage.current(name) is None]
        if missing:
            raise RequestError(f"table(s) {', '.join(missing)} not uploaded to both servers")
        return {name: Policy.from_json(self.storage.current(name).policy)
                for name in spec.plan.tables}

    def _admit(self, client: str, spec: JobSpec) -> str:
        """Every check a job must pass before it is queued, the owners' rules (who may submit
        among them) first: nothing else is looked at for a client the rules refuse. Returns
        the name ("submitter/id") of a prediction's model, resolved by the client's view."""
        rules = check_job(analyze(spec, self.schema), self.schema, self._policies(spec), client)
        model, kind = self._check_model(client, spec) if spec.kind == "predict" else (None, None)
        check_sizes(spec, self.schema, self.storage.current(spec.plan.root).rows, kind)
        if spec.charge is not None:
            ledger = BudgetLedger(self.config.data_dir)
            try:
                check_budgets(ledger, spec.charge, rules.budgets)
            finally:
                ledger.close()
        return model.name if model else ""

    async def _job_explain(self, client: str, header: dict) -> dict:
        """What a spec would read and release, every rule that applies to it, and whether it
        would be queued; nothing is queued or run."""
        spec = parse_job_spec(_text(header, "spec"), self.schema, set(self.config.clients))
        exposure = analyze(spec, self.schema)
        findings = review(exposure, self.schema, self._policies(spec), client)
        try:
            self._admit(client, spec)
            refusal = ""
        except (RequestError, ValueError) as error:  # the rules' and the checks' refusals
            refusal = str(error)
        return {"exposure": exposure.as_dict(), "findings": [asdict(f) for f in findings],
                "accepted": not refusal, "refusal": refusal}

    def _check_model(self, client: str, spec: JobSpec) -> tuple[JobState, str]:
        """A prediction uses a finished model its submitter may see, and goes only to that
        model's recipients; the model's job, resolved once, is recorded with the prediction.
        Returns that job and the model's kind (linear or logistic)."""
        section = spec.section
        model = self._known_job(client, section.model_job)
        if model.state != "done":
            raise RequestError(f"model job {section.model_job} is not a finished job")
        output = Output.load(self.jobs.output_folder(*model.key))
        if output.kind != "model":
            raise RequestError(f"job {section.model_job} did not train a model")
        if list(section.features) != output.info["features"]:  # what the owners granted
            raise RequestError(f"the features must be the model's: "
                               f"{', '.join(output.info['features'])}")
        if section.label is not None and list(section.label_range) != output.info["label_range"]:
            low, high = section.label_range
            raise RequestError(f"the label {section.label} ranges over [{low:g}, {high:g}]; "
                               f"the model's over {output.info['label_range']}")
        outsiders = set(spec.recipients) - set(model.recipients)
        if outsiders:
            raise RequestError(f"{', '.join(sorted(outsiders))} may not receive outputs of "
                               f"model {section.model_job}")
        return model, output.info["model"]

    def _budget(self, owner: str, table_name: str) -> dict:
        """A table's privacy budget as this server holds it: for the table's owner only."""
        table = self.schema.table(table_name)
        if table.owner != owner:
            raise RequestError(f"table {table.name} belongs to {table.owner}, not {owner}")
        current = self.storage.current(table.name)
        total = Policy.from_json(current.policy).budget if current else None
        ledger = BudgetLedger(self.config.data_dir)
        try:
            spent, history = ledger.spent(table.name), ledger.history(table.name)
        finally:
            ledger.close()
        return {"table": table.name, "total": total.as_dict() if total else None,
                "spent": {"epsilon": spent.epsilon, "delta": spent.delta},
                "history": history}

    def _known_job(self, client: str, name: str) -> JobState:
        """The job a client names, among those it may see (it submitted or receives them):
        "submitter/id", or an id: the client's own job of that id, else the one it receives.
        Any other job is answered for exactly as a job that does not exist."""
        submitter, job_id = check_job_name(name)
        state = self.jobs.states.get((submitter or client, job_id))
        if state is not None and client in (state.submitter, *state.recipients):
            return state
        if submitter is None:
            received = [s for s in self.jobs.states.values()
                        if s.job_id == job_id and client in s.recipients]
            if len(received) == 1:
                return received[0]
            if received:
                names = ", ".join(sorted(s.name for s in received))
                raise RequestError(f"{job_id} is the id of several jobs {client} receives: "
                                   f"{names}; name one as submitter/id")
        raise RequestError(f"no job {name} for {client}")

    async def _job_status(self, client: str, header: dict) -> dict:
        """State and error for the submitter; stage, costs and time for recipients only: at
        level 3 they follow the join's size, which only the job's result may tell."""
        state = self._known_job(client, header["job_id"])
        status = {"job": state.name, "state": state.state, "error": state.error}
        if client in state.recipients:
            running = self.running.get(state.key)
            status.update(stage=running[0].current if running else "", costs=state.costs,
                          seconds=state.seconds)
        return status

    async def _job_cancel(self, client: str, header: dict) -> dict:
        state = self._known_job(client, header["job_id"])
        if client != state.submitter:
            raise RequestError(f"only {state.submitter}, who submitted job {state.job_id}, may "
                               "cancel it")
        if state.state == "queued":
            state.state, state.error = "failed", f"cancelled by {client}"
            self.jobs.save(state)
        elif state.key in self.running:
            self.running[state.key][1].set()
        return {"state": state.state}

    async def _fetch_output(self, client: str, header: dict):
        state = self._known_job(client, header["job_id"])
        if client not in state.recipients:
            raise RequestError(f"{client} is not a recipient of job {state.job_id}")
        if state.state != "done":
            raise RequestError(f"job {state.job_id} is {state.state}"
                               + (f": {state.error}" if state.error else ""))
        output = Output.load(self.jobs.output_folder(*state.key))
        return {"meta": output.meta()}, output.shares

    def _start_as_follower(self, key: tuple[str, str], spec_hash: str) -> str:
        """Server 1 starts a job when server 0 says so, if it holds the same spec and has not
        ended it (cancelled, or failed at an earlier try)."""
        state = self.jobs.states.get(key)
        if state is None:
            return "missing"
        if state.spec_hash != spec_hash:
            state.state, state.error = "failed", "the servers received different specs"
            self.jobs.save(state)
            return "mismatch"
        if key in self.running:  # server 0 asks again: its first answer was lost
            return "started"
        if state.state != "queued":
            return f"its copy is {state.state}" + (f": {state.error}" if state.error else "")
        if self.preprocessing is not None:  # server 0 has stopped its side: stop ours too
            self.preprocessing.set()
            return "busy"
        if self.running:
            return "busy"
        self._spawn(self._run(state))
        return "started"

    def _abandon(self, key: tuple[str, str], error: str) -> str:
        """Server 0 could not start a job: server 1's queued copy fails too, so that no
        client waits for a job that nobody will start."""
        if self.party != 1:
            raise RequestError("server 1 follows server 0's jobs; it fails none of server 0's")
        state = self.jobs.states.get(key)
        if state is None or state.state != "queued":
            return "missing" if state is None else state.state
        state.state, state.error = "failed", f"server 0 could not start it: {error}"[:500]
        self.jobs.save(state)
        return "failed"

    async def _run(self, state: JobState) -> None:
        accounting, cancel = Accounting(), StopSignal()
        self.running[state.key] = (accounting, cancel)
        try:
            await asyncio.to_thread(run_job_blocking, self.config.endpoints, self.config.data_dir,
                                    self.schema, self._spec(state), state, self.jobs,
                                    accounting, cancel)
        finally:
            del self.running[state.key]

    async def _schedule(self) -> None:
        """Server 0 starts queued jobs in submission order, each once server 1 agrees. With
        idle_cots, it fills the COT stores with server 1 at start and after jobs, whenever no
        job is queued (again after IDLE_RETRY_S if that failed)."""
        refill = self.config.idle_cots > 0
        while True:
            self._queued.clear()
            queued = [s for s in list(self.jobs.states.values()) if s.state == "queued"]
            for state in queued:
                if await self._follower_started(state):
                    await self._run(state)
            if queued:
                refill = self.config.idle_cots > 0
                continue  # jobs submitted meanwhile go before preprocessing
            if refill:
                refill = not await self._preprocess_idle()
            try:
                async with asyncio.timeout(IDLE_RETRY_S if refill else None):
                    await self._queued.wait()
            except TimeoutError:
                pass

    async def _preprocess_idle(self) -> bool:
        """One idle-time session with server 1, stopped when a job is queued. False if it
        failed (to be retried)."""
        session_id = f"idle-{uuid.uuid4().hex}"
        status = await self._ask_to_follow(session_id)
        if status != "started":
            if status == "off":
                log.warning("server 1 makes no COTs while idle (idle_cots = 0 in its config)")
                return True
            log.warning("idle preprocessing not started: server 1 answered %.200s", status)
            return False
        cancel = self._begin_preprocessing()
        stop_for_jobs = asyncio.create_task(self._queued.wait())
        stop_for_jobs.add_done_callback(lambda _: cancel.set())
        try:
            return await self._preprocess(cancel, session_id)
        finally:
            stop_for_jobs.cancel()

    async def _ask_to_follow(self, session_id: str) -> str:
        """Server 1's answer to a new session; while it is busy ending a stale one (this
        server restarted), asked again until the timeout or a job arrives."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.endpoints.timeout_s
        while True:
            try:
                response, _ = await self.peer.call({"action": "preprocess_start",
                                                    "session_id": session_id})
                status = response.get("status")
            except ServiceError as error:
                status = str(error)
            if status != "busy" or loop.time() >= deadline or self._queued.is_set():
                return status
            await asyncio.sleep(0.2)

    def _preprocess_as_follower(self, session_id: str) -> str:
        if self.party != 1:
            raise RequestError("server 0 starts idle preprocessing; it follows no one")
        if not self.config.idle_cots:
            return "off"
        if self.preprocessing is not None:  # a stale session: server 0 has moved on
            self.preprocessing.set()
            return "busy"
        if self.running:
            return "busy"
        self._spawn(self._preprocess(self._begin_preprocessing(), session_id))
        return "started"

    def _begin_preprocessing(self) -> StopSignal:
        self.preprocessing = StopSignal()
        return self.preprocessing

    async def _preprocess(self, cancel: StopSignal, session_id: str) -> bool:
        """This server's side of an idle-time session, in a thread like a job's. False if it
        failed for another reason than a job arriving."""
        try:
            made = await asyncio.to_thread(preprocess_blocking, self.config.endpoints,
                                           self.config.idle_cots, cancel, session_id)
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
            self.preprocessing = None

    async def _follower_started(self, state: JobState) -> bool:
        deadline = asyncio.get_running_loop().time() + self.config.endpoints.timeout_s
        while True:
            try:
                response, _ = await self.peer.call({"action": "job_start", **_naming(state),
                                                    "spec_hash": state.spec_hash})
                status = response["status"]
            except ServiceError as error:
                status = str(error)
            if status == "started":
                return True
            if status in ("missing", "busy") and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.2)
                continue
            state.state = "failed"
            state.error = ("server 1 never received this job" if status == "missing" else
                           "the servers received different specs" if status == "mismatch" else
                           f"server 1 could not start it: {status}")
            self.jobs.save(state)
            await self._tell_follower_failed(state)
            return False

    async def _tell_follower_failed(self, state: JobState) -> None:
        """Best effort: if server 1 is unreachable, clients still stop waiting (a job that
        failed on server 0 is never started, see twofold.client.wait_for_job)."""
        try:
            await self.peer.call({"action": "job_abandon", **_naming(state),
                                  "error": state.error})
        except ServiceError as error:
            log.warning("could not tell server 1 that job %s failed: %s", state.name, error)
