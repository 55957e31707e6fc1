"""Running a job on one server: load the shares, join, filter, compute, release, store.

Both servers run the same job in step. Before any work they check over their link that they
agree on the spec (its hash), on the version of every table (upload ids) and, for a [predict]
job, on the model's job.

Job ids are chosen by clients, so they are per submitter: a job is (submitter, id), written
"submitter/id" wherever it leaves one server (the peer, the dealer, the budget ledger).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from twofold.mpc.accounting import Accounting
from twofold.mpc.actions import State
from twofold.mpc.errors import ProtocolMismatch
from twofold.mpc.link import StopSignal
from twofold.mpc.outputs import Output
from twofold.mpc.party import Party
from twofold.mpc.ring import FixedPoint
from twofold.mpc.session import Endpoints, open_party
from twofold.owners.policy import Policy
from twofold.owners.schema import Schema
from twofold.servers.audit import Audit
from twofold.servers.budget import BudgetLedger, spend
from twofold.servers.execute import execute
from twofold.servers.exposure import analyze
from twofold.servers.jobspec import JobSpec, PredictSection
from twofold.servers.rules import check_job
from twofold.servers.storage import Storage, check_id, confined

log = logging.getLogger("twofold.jobs")


@dataclass
class JobState:
    job_id: str
    spec_hash: str
    submitter: str
    recipients: list[str]
    state: State = State.QUEUED
    error: str = ""
    costs: dict = field(default_factory=dict)  # per stage; its seconds add up to `seconds`
    seconds: float = 0.0  # the job's wall time on this server, from start to stored output
    model: str = ""  # a [predict] job's model, "submitter/id" as resolved at submission

    def __post_init__(self) -> None:
        self.state = State(self.state)  # as read from state.json; refuses unknown states

    @property
    def key(self) -> tuple[str, str]:
        """The job's identity on a server: ids are per submitter."""
        return self.submitter, self.job_id

    @property
    def name(self) -> str:
        """The identity as the peer, the dealer, the ledger and clients see it."""
        return f"{self.submitter}/{self.job_id}"


class JobStore:
    """Jobs of one server on disk, by (submitter, id):
    data_dir/jobs/<submitter>/<job id>/{spec.toml, state.json, output/}.

    state.json is replaced atomically (written aside, fsynced, renamed), and a job is
    acknowledged only after its first state.json is in place; so a folder without one is a
    submission cut short by a crash, which nobody was told about and which is removed."""

    def __init__(self, data_dir: Path):
        self.root = Path(data_dir) / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.states: dict[tuple[str, str], JobState] = {}
        for submitter in sorted(self.root.iterdir()):
            if (submitter / "state.json").exists():
                log.warning("ignoring %s: a job stored before ids were per submitter; move it "
                            "to jobs/<submitter>/<id>/", submitter)
            elif submitter.is_dir():
                self._load(submitter)

    def _load(self, submitter: Path) -> None:
        for folder in sorted(submitter.iterdir()):
            try:
                state = JobState(**json.loads((folder / "state.json").read_text()))
                if state.key != (submitter.name, folder.name):
                    raise ValueError(f"it names job {state.name}")
            except FileNotFoundError:
                log.warning("removing %s: a submission interrupted before it was accepted",
                            folder)
                shutil.rmtree(folder, ignore_errors=True)
                continue
            except (OSError, ValueError, TypeError) as error:
                log.warning("ignoring job folder %s: unreadable state (%s)", folder, error)
                continue
            if state.state in (State.QUEUED, State.RUNNING):  # interrupted by a restart
                state.state, state.error = State.FAILED, "the server restarted during the job"
            self.states[state.key] = state
            self.save(state)

    def add(self, state: JobState, spec_text: str) -> None:
        folder = self._folder(*state.key)
        folder.mkdir(parents=True)
        (folder / "spec.toml").write_text(spec_text)
        self.states[state.key] = state
        self.save(state)

    def save(self, state: JobState) -> None:
        folder = self._folder(*state.key)
        aside = folder / "state.json.new"
        with open(aside, "w") as handle:
            handle.write(json.dumps(asdict(state)))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(aside, folder / "state.json")

    def spec_text(self, submitter: str, job_id: str) -> str:
        return (self._folder(submitter, job_id) / "spec.toml").read_text()

    def output_folder(self, submitter: str, job_id: str) -> Path:
        return self._folder(submitter, job_id) / "output"

    def _folder(self, submitter: str, job_id: str) -> Path:
        return confined(self.root, check_id("submitter", submitter), check_id("job id", job_id))


def agreement_digest(spec: JobSpec, versions: dict[str, str], model: str) -> np.ndarray:
    agreed = spec.hash + json.dumps([versions, model], sort_keys=True)
    digest = hashlib.sha256(agreed.encode()).digest()
    return np.frombuffer(digest, dtype=np.uint64).copy()


async def agree(party: Party, spec: JobSpec, versions: dict[str, str], model: str) -> None:
    """Both servers must run the same spec on the same table versions, and a [predict] job
    with the same model: its spec may name it by a bare id, which each server resolved."""
    mine = agreement_digest(spec, versions, model)
    (theirs,) = await party.link.exchange(mine)
    if not np.array_equal(mine, theirs):
        raise ProtocolMismatch("the servers disagree on the job spec, on table versions or on "
                               "the model")


def run_job_blocking(endpoints: Endpoints, data_dir: Path, schema: Schema, spec: JobSpec,
                     state: JobState, store: JobStore, accounting: Accounting,
                     cancel: StopSignal, audit: Audit) -> None:
    """One server's whole job, in its own thread and event loop; `accounting.current` tells
    the job's stage meanwhile, and setting `cancel` stops it at its next message or wait for
    the peer. Every step is in a stage: load, connect, agree, the computation's own, release,
    close, store.

    The owners' rules are checked again against the exact versions the job reads, and both
    servers agree on those versions and record any privacy spend before any work."""

    async def main():
        with accounting.stage("load"):
            storage = Storage(data_dir)
            try:
                records, missing = storage.live(spec.plan.tables)
                if missing:
                    raise ProtocolMismatch(f"tables not ready on server {endpoints.party_id}: "
                                           f"{', '.join(missing)}")
                versions = {name: record.upload_id for name, record in records.items()}
                rules = check_job(analyze(spec, schema), schema,
                                  {name: Policy.from_json(record.policy)
                                   for name, record in records.items()}, state.submitter)
                tables = {name: storage.load(record) for name, record in records.items()}
            finally:
                storage.close()
            model = (Output.load(store.output_folder(*state.model.split("/")))
                     if isinstance(spec.section, PredictSection) else None)
        async with open_party(endpoints, state.name, FixedPoint(schema.fixed.frac_bits),
                              accounting, cancel) as party:
            with party.stage("agree"):
                await agree(party, spec, versions, state.model)
                audit.start(state.name, versions, state.model)
                if spec.charge is not None:
                    ledger = BudgetLedger(data_dir)
                    try:
                        await spend(party, ledger, state.name, spec.charge, rules.budgets)
                    finally:
                        ledger.close()
                    audit.spend(state.name, {table: spec.charge.as_dict()
                                             for table in sorted(rules.budgets)})
            return await execute(party, spec, schema, tables, rules, model)

    state.state = State.RUNNING
    store.save(state)
    started = time.perf_counter()
    try:
        output = asyncio.run(main())
        with accounting.stage("store"):
            output.save(store.output_folder(*state.key))
            audit.release(state.name, output)  # before any client can see the job done
        state.state = State.DONE
    except Exception as error:  # every failure ends the job and is reported to the client
        log.warning("job %s failed: %s", state.name, traceback.format_exc())
        state.state = State.FAILED
        state.error = ((cancel.reason or "cancelled") if cancel.is_set()
                       else f"{type(error).__name__}: {error}")
    state.seconds = time.perf_counter() - started
    state.costs = {name: cost.as_dict() for name, cost in accounting.stages.items()}
    store.save(state)
