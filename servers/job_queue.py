"""One server's jobs as clients and the peer see them: submission, status, cancellation,
outputs, and the order in which both servers run them.

Jobs run one at a time, in the order server 0 starts them, after any requested check of an
upload's values (servers/check_queue.py): server 0's scheduler asks server 1
to start each queued job (JOB_START) and runs its own side once server 1 has, or fails the job
on both (JOB_ABANDON) if server 1 cannot. Each job runs in a thread of its own
(servers/jobs.py) so the service loop keeps answering. With idle_cots, server 0 fills the COT
stores with server 1 whenever no job is queued (servers/idle_preprocessing.py), and a
submission stops that at once.

A job's submitter sees its state and error only; its stage, costs and time go to its
recipients: at level 3 they follow the join's size, which only the job's result may tell.

Its submitter, or the owner of a table it reads, may cancel a job. The operator's quotas
(servers/config.py) bound the jobs a client has queued or running, and server 0 stops a job
that runs past the time limit on both servers (JOB_STOP). A table its owner withdraws fails the
queued jobs that read it and stops the running ones (servers/withdrawal.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from twofold.mpc.accounting import Accounting
from twofold.mpc.actions import JOB_ABANDON, JOB_START, JOB_STOP, State
from twofold.mpc.link import StopSignal
from twofold.mpc.outputs import Output
from twofold.mpc.rpc import ServiceError
from twofold.mpc.service import Request, RequestError
from twofold.owners.schema import Schema
from twofold.servers.admission import Admission, known_job
from twofold.servers.audit import Audit
from twofold.servers.check_queue import CheckQueue
from twofold.servers.config import ServerConfig
from twofold.servers.idle_preprocessing import IDLE_RETRY_S, IdlePreprocessing
from twofold.servers.jobs import JobState, JobStore, run_job_blocking
from twofold.servers.jobspec import JobSpec, parse_job_spec
from twofold.servers.storage import Storage, check_id, check_job_name

log = logging.getLogger("twofold.server")


def naming(state: JobState) -> dict:
    """A job as the servers name it to each other: its submitter and its id."""
    return {"submitter": state.submitter, "job_id": state.job_id}


def named_job(request: Request) -> tuple[str, str]:
    """The job a message from the peer names (see naming), as its key."""
    return (check_id("submitter", request.header.get("submitter")),
            check_id("job id", request.header.get("job_id")))


class JobQueue:
    """`running` holds the jobs running on this server, by key, with their accounting (for
    their stage) and their cancel; `call_peer(header)` asks the other server."""

    def __init__(self, config: ServerConfig, schema: Schema, storage: Storage,
                 admission: Admission, jobs: JobStore,
                 running: dict[tuple[str, str], tuple[Accounting, StopSignal]],
                 idle: IdlePreprocessing, spawn,
                 call_peer: Callable[[dict], Awaitable[dict]], audit: Audit,
                 checks: CheckQueue):
        self.config = config
        self.audit = audit
        self.schema = schema
        self.storage = storage
        self.admission = admission
        self.jobs = jobs
        self.running = running
        self.idle = idle
        self.spawn = spawn
        self.call_peer = call_peer
        self.checks = checks
        self.queued = asyncio.Event()  # set by each submission or check: server 0's scheduler

    def _parse(self, text: str) -> JobSpec:
        return parse_job_spec(text, self.schema, set(self.config.clients))

    def _tables(self, state: JobState) -> set[str]:
        """The tables a stored job reads."""
        return set(self._parse(self.jobs.spec_text(*state.key)).plan.tables)

    def _withdrawn(self, state: JobState) -> str:
        """Why the job may not start because a table it reads is withdrawn, or ""."""
        marked = sorted(self._tables(state) & set(self.storage.withdrawing()))
        return withdrawn_error(marked[0]) if marked else ""

    # ---- what clients ask ------------------------------------------------------------------

    async def submit(self, client: str, job_id: str, text: str) -> dict:
        spec = self._parse(text)
        existing = self.jobs.states.get((client, job_id))  # ids are per submitter
        if existing is not None:
            if existing.spec_hash != spec.hash:
                raise RequestError(f"job id {job_id} was already used for another spec")
            return {"state": existing.state, "spec_hash": spec.hash}
        active = sum(s.submitter == client and s.state in (State.QUEUED, State.RUNNING)
                     for s in self.jobs.states.values())
        if active >= self.config.quotas.of(client).client_jobs:
            raise RequestError(f"{client} already has {active} job(s) queued or running, the "
                               f"most server {self.config.endpoints.party_id} allows "
                               f"(client_jobs); wait for one to end or cancel one")
        model = self.admission.admit(client, spec)
        self.jobs.add(JobState(job_id, spec.hash, client, list(spec.recipients), model=model),
                      text)
        self.audit.submit(self.schema, client, job_id, spec)
        self.queued.set()
        return {"state": State.QUEUED, "spec_hash": spec.hash}

    async def explain(self, client: str, text: str) -> dict:
        return self.admission.explain(client, self._parse(text))

    async def status(self, client: str, name: str) -> dict:
        """State and error for the submitter; stage, costs and time for recipients only."""
        state = known_job(self.jobs, client, name)
        status: dict[str, object] = {"job": state.name, "state": state.state,
                                     "error": state.error}
        if client in state.recipients:
            running = self.running.get(state.key)
            status.update(stage=running[0].current if running else "", costs=state.costs,
                          seconds=state.seconds)
        return status

    async def cancel(self, client: str, name: str) -> dict:
        """By its submitter, or by the owner of a table it reads (who names it
        "submitter/id")."""
        submitter, job_id = check_job_name(name)
        state = self.jobs.states.get((submitter or client, job_id))
        if state is None or client not in (state.submitter, *self._owners(state)):
            state = known_job(self.jobs, client, name)  # a recipient's, or no job at all
            raise RequestError(f"only {state.submitter}, who submitted job {state.job_id}, or "
                               "an owner of a table it reads may cancel it")
        if state.state == State.QUEUED:
            state.state, state.error = State.FAILED, f"cancelled by {client}"
            self.jobs.save(state)
        elif state.key in self.running:
            self.running[state.key][1].stop(f"cancelled by {client}")
        return {"state": state.state}

    def _owners(self, state: JobState) -> set[str]:
        return {self.schema.table(name).owner for name in self._tables(state)}

    async def fetch(self, client: str, name: str):
        state = known_job(self.jobs, client, name)
        if client not in state.recipients:
            raise RequestError(f"{client} is not a recipient of job {state.job_id}")
        if state.state != State.DONE:
            raise RequestError(f"job {state.job_id} is {state.state}"
                               + (f": {state.error}" if state.error else ""))
        output = Output.load(self.jobs.output_folder(*state.key))
        self.audit.fetch(client, state.name)
        return {"meta": output.meta()}, output.shares

    # ---- server 1, following server 0 ------------------------------------------------------

    def start_as_follower(self, key: tuple[str, str], spec_hash: str, quotas) -> dict:
        """Server 1 starts a job when server 0 says so, if it holds the same spec, has not
        ended it (cancelled, or failed at an earlier try), both servers set the same quotas
        and no table the job reads is being withdrawn here."""
        state = self.jobs.states.get(key)
        if state is None:
            return {"status": "missing"}
        if state.spec_hash != spec_hash:
            state.state, state.error = State.FAILED, "the servers received different specs"
            self.jobs.save(state)
            return {"status": "mismatch"}
        if key in self.running:  # server 0 asks again: its first answer was lost
            return {"status": "started"}
        mine = self.config.quotas.as_message()
        refusal = (self._withdrawn(state) if quotas == mine else
                   f"the servers' quotas differ: server 0 {quotas!r:.300}, server 1 {mine}")
        if refusal and state.state == State.QUEUED:
            state.state, state.error = State.FAILED, refusal
            self.jobs.save(state)
        if state.state != State.QUEUED:
            return {"status": f"its copy is {state.state}"
                              + (f": {state.error}" if state.error else "")}
        if self.idle.stop() or self.running:  # server 0 has stopped its side: stop ours too
            return {"status": "busy"}
        self.running[key] = (Accounting(), StopSignal())  # now: server 0 may stop it at once
        self.spawn(self._run(state))
        return {"status": "started"}

    def abandon(self, key: tuple[str, str], error: str) -> dict:
        """Server 0 could not start a job: server 1's queued copy fails too, so that no
        client waits for a job that nobody will start."""
        if self.config.endpoints.party_id != 1:
            raise RequestError("server 1 follows server 0's jobs; it fails none of server 0's")
        state = self.jobs.states.get(key)
        if state is None or state.state != State.QUEUED:
            return {"status": "missing" if state is None else state.state}
        state.state, state.error = State.FAILED, f"server 0 could not start it: {error}"[:500]
        self.jobs.save(state)
        return {"status": "failed"}

    def stop_as_follower(self, key: tuple[str, str], reason: str) -> dict:
        """Server 0 stopped a job (past its time limit): server 1's side stops too."""
        if key in self.running:
            self.running[key][1].stop(reason[:500])
        return {}

    def table_withdrawn(self, table_name: str) -> None:
        """Its owner withdraws the table: the queued jobs that read it fail, the running ones
        stop."""
        reason = withdrawn_error(table_name)
        for state in list(self.jobs.states.values()):
            if state.state not in (State.QUEUED, State.RUNNING):
                continue
            if table_name not in self._tables(state):
                continue
            if state.key in self.running:
                self.running[state.key][1].stop(reason)
            elif state.state == State.QUEUED:  # on both servers: the owner withdraws on both
                state.state, state.error = State.FAILED, reason
                self.jobs.save(state)

    # ---- running -----------------------------------------------------------------------------

    async def _run(self, state: JobState) -> None:
        """Server 0 stops the job on both servers once it runs past the time limit."""
        accounting, cancel = self.running.setdefault(state.key, (Accounting(), StopSignal()))
        try:
            work = asyncio.ensure_future(asyncio.to_thread(
                run_job_blocking, self.config.endpoints, self.config.data_dir, self.schema,
                self._parse(self.jobs.spec_text(*state.key)), state, self.jobs, accounting,
                cancel, self.audit))
            if self.config.endpoints.party_id == 0:
                limit = self.config.quotas.of(state.submitter).job_seconds
                done, _ = await asyncio.wait({work}, timeout=limit)
                if not done:
                    await self._stop_overtime(state, cancel, limit)
            await work
            if cancel.reason and state.state == State.FAILED and state.error != cancel.reason:
                state.error = cancel.reason  # it failed first as the peer's side stopped
                self.jobs.save(state)
        finally:
            del self.running[state.key]

    async def _stop_overtime(self, state: JobState, cancel: StopSignal, limit: float) -> None:
        """This server's side first, so that its error is this one and not the peer's
        leaving; then server 1's (best effort: without server 0, its side stops anyway)."""
        reason = (f"job {state.name} stopped: it ran past the {limit:g} s limit for "
                  f"{state.submitter}")
        cancel.stop(reason)
        try:
            await self.call_peer({"action": JOB_STOP, **naming(state), "reason": reason})
        except ServiceError as error:
            log.warning("could not tell server 1 to stop job %s: %s", state.name, error)

    def stop(self) -> None:
        """The service stops: every running job stops at once."""
        for _, cancel in self.running.values():
            cancel.set()

    async def schedule(self) -> None:
        """Server 0 checks requested uploads (servers/check_queue.py), then starts queued
        jobs in submission order, each once server 1 agrees. With
        idle_cots, it fills the COT stores with server 1 at start and after jobs, whenever no
        job is queued (again after IDLE_RETRY_S if that failed)."""
        refill = self.config.idle_cots > 0
        while True:
            self.queued.clear()
            await self.checks.run_pending()
            queued = [s for s in list(self.jobs.states.values()) if s.state == State.QUEUED]
            for state in queued:
                if state.state != State.QUEUED:
                    continue  # ended meanwhile: cancelled, or its table withdrawn
                refusal = self._withdrawn(state)
                if refusal:
                    await self._fail(state, refusal)
                elif await self._follower_started(state):
                    await self._run(state)
            if queued:
                refill = self.config.idle_cots > 0
                continue  # jobs submitted meanwhile go before preprocessing
            if refill:
                refill = not await self.idle.fill(self.queued)
            try:
                async with asyncio.timeout(IDLE_RETRY_S if refill else None):
                    await self.queued.wait()
            except TimeoutError:
                pass

    async def _follower_started(self, state: JobState) -> bool:
        deadline = asyncio.get_running_loop().time() + self.config.endpoints.timeout_s
        while True:
            try:
                response = await self.call_peer({"action": JOB_START, **naming(state),
                                                 "spec_hash": state.spec_hash,
                                                 "quotas": self.config.quotas.as_message()})
                status = response["status"]
            except ServiceError as error:
                status = str(error)
            if state.state != State.QUEUED:  # ended meanwhile here (cancelled, its table
                return False  # withdrawn), with its own reason; server 1's side ends too
            if status == "started":
                return True
            if status in ("missing", "busy") and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.2)
                continue
            await self._fail(state, "server 1 never received this job" if status == "missing"
                             else "the servers received different specs" if status == "mismatch"
                             else f"server 1 could not start it: {status}")
            return False

    async def _fail(self, state: JobState, error: str) -> None:
        state.state, state.error = State.FAILED, error
        self.jobs.save(state)
        await self._tell_follower_failed(state)

    async def _tell_follower_failed(self, state: JobState) -> None:
        """Best effort: if server 1 is unreachable, clients still stop waiting (a job that
        failed on server 0 is never started, see twofold.client.wait_for_job)."""
        try:
            await self.call_peer({"action": JOB_ABANDON, **naming(state), "error": state.error})
        except ServiceError as error:
            log.warning("could not tell server 1 that job %s failed: %s", state.name, error)


def withdrawn_error(table_name: str) -> str:
    return f"table {table_name} was withdrawn by its owner"
