"""Running a job on one server: load the shares, join, filter, compute, release, store.

Both servers run the same job in step. Before any work they check over their link that they
agree on the spec (its hash) and on the version of every table (upload ids).
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

from mpc.accounting import Accounting
from mpc.errors import ProtocolMismatch
from mpc.link import StopSignal
from mpc.party import Party
from mpc.ring import FixedPoint
from mpc.session import Endpoints, open_party
from owners.policy import Policy
from owners.schema import Schema
from servers.budget import BudgetLedger, spend
from servers.execute import execute
from servers.exposure import analyze
from servers.jobspec import JobSpec
from servers.outputs import Output
from servers.rules import check_job
from servers.storage import Storage, check_id, confined

log = logging.getLogger("twofold.jobs")


@dataclass
class JobState:
    job_id: str
    spec_hash: str
    submitter: str
    recipients: list[str]
    state: str = "queued"  # queued, running, done, failed
    error: str = ""
    costs: dict = field(default_factory=dict)  # per stage; its seconds add up to `seconds`
    seconds: float = 0.0  # the job's wall time on this server, from start to stored output


class JobStore:
    """Jobs of one server on disk: data_dir/jobs/<job id>/{spec.toml, state.json, output/}.

    state.json is replaced atomically (written aside, fsynced, renamed), and a job is
    acknowledged only after its first state.json is in place; so a folder without one is a
    submission cut short by a crash, which nobody was told about and which is removed."""

    def __init__(self, data_dir: Path):
        self.root = Path(data_dir) / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.states: dict[str, JobState] = {}
        for folder in sorted(self.root.iterdir()):
            try:
                state = JobState(**json.loads((folder / "state.json").read_text()))
            except FileNotFoundError:
                log.warning("removing %s: a submission interrupted before it was accepted",
                            folder)
                shutil.rmtree(folder, ignore_errors=True)
                continue
            except (OSError, ValueError, TypeError) as error:
                log.warning("ignoring job folder %s: unreadable state (%s)", folder, error)
                continue
            if state.state in ("queued", "running"):  # interrupted by a restart
                state.state, state.error = "failed", "the server restarted during the job"
            self.states[state.job_id] = state
            self.save(state)

    def add(self, state: JobState, spec_text: str) -> None:
        folder = confined(self.root, check_id("job id", state.job_id))
        folder.mkdir()
        (folder / "spec.toml").write_text(spec_text)
        self.states[state.job_id] = state
        self.save(state)

    def save(self, state: JobState) -> None:
        folder = confined(self.root, check_id("job id", state.job_id))
        aside = folder / "state.json.new"
        with open(aside, "w") as handle:
            handle.write(json.dumps(asdict(state)))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(aside, folder / "state.json")

    def spec_text(self, job_id: str) -> str:
        return (confined(self.root, check_id("job id", job_id)) / "spec.toml").read_text()

    def output_folder(self, job_id: str) -> Path:
        return confined(self.root, check_id("job id", job_id)) / "output"


def agreement_digest(spec: JobSpec, versions: dict[str, str]) -> np.ndarray:
    digest = hashlib.sha256((spec.hash + json.dumps(versions, sort_keys=True)).encode()).digest()
    return np.frombuffer(digest, dtype=np.uint64).copy()


async def agree(party: Party, spec: JobSpec, versions: dict[str, str]) -> None:
    """Both servers must run the same spec on the same table versions."""
    mine = agreement_digest(spec, versions)
    (theirs,) = await party.link.exchange(mine)
    if not np.array_equal(mine, theirs):
        raise ProtocolMismatch("the servers disagree on the job spec or on table versions")


def run_job_blocking(endpoints: Endpoints, data_dir: Path, schema: Schema, spec: JobSpec,
                     clients: set[str], state: JobState, store: JobStore,
                     accounting: Accounting, cancel: StopSignal) -> None:
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
                records = {name: storage.current(name) for name in spec.plan.tables}
                missing = [name for name, record in records.items() if record is None]
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
            model = (Output.load(store.output_folder(spec.section.model_job))
                     if spec.kind == "predict" else None)
        async with open_party(endpoints, state.job_id, FixedPoint(schema.fixed.frac_bits),
                              accounting, cancel) as party:
            with party.stage("agree"):
                await agree(party, spec, versions)
                if spec.charge is not None:
                    ledger = BudgetLedger(data_dir)
                    try:
                        await spend(party, ledger, state.job_id, spec.charge, rules.budgets)
                    finally:
                        ledger.close()
            return await execute(party, spec, schema, tables, rules, model)

    state.state = "running"
    store.save(state)
    started = time.perf_counter()
    try:
        output = asyncio.run(main())
        with accounting.stage("store"):
            output.save(store.output_folder(state.job_id))
        state.state = "done"
    except Exception as error:  # every failure ends the job and is reported to the client
        log.warning("job %s failed: %s", state.job_id, traceback.format_exc())
        state.state = "failed"
        state.error = ("cancelled" if cancel.is_set() else f"{type(error).__name__}: {error}")
    state.seconds = time.perf_counter() - started
    state.costs = {name: cost.as_dict() for name, cost in accounting.stages.items()}
    store.save(state)
