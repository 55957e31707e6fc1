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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from twofold.mpc.accounting import Accounting
from twofold.mpc.actions import JOB_ABANDON, JOB_START, State
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
from twofold.servers.storage import check_id

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

    def __init__(self, config: ServerConfig, schema: Schema, admission: Admission,
                 jobs: JobStore, running: dict[tuple[str, str], tuple[Accounting, StopSignal]],
                 idle: IdlePreprocessing, spawn,
                 call_peer: Callable[[dict], Awaitable[dict]], audit: Audit,
                 checks: CheckQueue):
        self.config = config
        self.audit = audit
        self.schema = schema
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

    # ---- what clients ask ------------------------------------------------------------------

    async def submit(self, client: str, job_id: str, text: str) -> dict:
        spec = self._parse(text)
        existing = self.jobs.states.get((client, job_id))  # ids are per submitter
        if existing is not None:
            if existing.spec_hash != spec.hash:
                raise RequestError(f"job id {job_id} was already used for another spec")
            return {"state": existing.state, "spec_hash": spec.hash}
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
        state = known_job(self.jobs, client, name)
        if client != state.submitter:
            raise RequestError(f"only {state.submitter}, who submitted job {state.job_id}, may "
                               "cancel it")
        if state.state == State.QUEUED:
            state.state, state.error = State.FAILED, f"cancelled by {client}"
            self.jobs.save(state)
        elif state.key in self.running:
            self.running[state.key][1].set()
        return {"state": state.state}

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

    def start_as_follower(self, key: tuple[str, str], spec_hash: str) -> dict:
        """Server 1 starts a job when server 0 says so, if it holds the same spec and has not
        ended it (cancelled, or failed at an earlier try)."""
        state = self.jobs.states.get(key)
        if state is None:
            return {"status": "missing"}
        if state.spec_hash != spec_hash:
            state.state, state.error = State.FAILED, "the servers received different specs"
            self.jobs.save(state)
            return {"status": "mismatch"}
        if key in self.running:  # server 0 asks again: its first answer was lost
            return {"status": "started"}
        if state.state != State.QUEUED:
            return {"status": f"its copy is {state.state}"
                              + (f": {state.error}" if state.error else "")}
        if self.idle.stop() or self.running:  # server 0 has stopped its side: stop ours too
            return {"status": "busy"}
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

    # ---- running -----------------------------------------------------------------------------

    async def _run(self, state: JobState) -> None:
        accounting, cancel = Accounting(), StopSignal()
        self.running[state.key] = (accounting, cancel)
        try:
            await asyncio.to_thread(run_job_blocking, self.config.endpoints, self.config.data_dir,
                                    self.schema, self._parse(self.jobs.spec_text(*state.key)),
                                    state, self.jobs, accounting, cancel, self.audit)
        finally:
            del self.running[state.key]

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
                if await self._follower_started(state):
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
                                                 "spec_hash": state.spec_hash})
                status = response["status"]
            except ServiceError as error:
                status = str(error)
            if status == "started":
                return True
            if status in ("missing", "busy") and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.2)
                continue
            state.state = State.FAILED
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
            await self.call_peer({"action": JOB_ABANDON, **naming(state), "error": state.error})
        except ServiceError as error:
            log.warning("could not tell server 1 that job %s failed: %s", state.name, error)
