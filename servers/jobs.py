"""Running a job on one server: load the shares, join, filter, compute, store the output.

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
import threading
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ml.dp import calibrate_statistics
from ml.features import Scaling, scale
from ml.pipeline import fit, keep_tau_rows
from ml.sgd import sigmoid
from mpc.accounting import Accounting
from mpc.errors import ProtocolMismatch
from mpc.noise import discrete_gaussian
from mpc.party import Party
from mpc.protocols.arithmetic import matmul, mul, truncate
from mpc.protocols.boolean import less_than
from mpc.ring import FixedPoint
from mpc.session import Endpoints, open_party
from owners.schema import INDICATOR, Schema
from servers.jobspec import JobSpec, plan_columns
from servers.outputs import Output, OutputColumn, describe
from servers.storage import Storage, check_id, confined
from sorting_join.aggregate import group_by, statistics
from sorting_join.multiway import run_join
from sorting_join.predicate import column_type
from sorting_join.table import SharedTable

log = logging.getLogger("twofold.jobs")


@dataclass
class JobState:
    job_id: str
    spec_hash: str
    submitter: str
    recipients: list[str]
    state: str = "queued"  # queued, running, done, failed
    error: str = ""
    costs: dict = field(default_factory=dict)


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


async def _train(party: Party, spec: JobSpec, root: SharedTable) -> Output:
    trained = await fit(party, root, spec.train)
    train = spec.train
    info = {"model": train.hyper.model, "features": list(train.features), "label": train.label,
            "centers": list(trained.scaling.centers), "factors": list(trained.scaling.factors),
            "label_range": list(train.label_range), "privacy_level": train.level,
            "hyper": asdict(train.hyper), "join_size": trained.join_size,
            "dp_ledger": trained.ledger.as_dict() if trained.ledger else None}
    return Output("model", [OutputColumn("weights", "fixed")], [trained.weights],
                  party.fixed.frac_bits, [], info)


async def _predict(party: Party, spec: JobSpec, root: SharedTable, model: Output) -> Output:
    info, weights = model.info, model.shares[0]
    n, features = root.rows, spec.columns[:len(info["features"])]
    ones = party.public(np.full(n, party.fixed.encode(1.0)))
    with party.stage("predict"):
        x = await scale(party, [root.column(f) for f in features] + [ones],
                        Scaling(tuple(info["centers"]), tuple(info["factors"])))
        (score,) = (await truncate(party, await matmul(party, x, weights[:, None]))).T
        if info["model"] == "logistic":
            score = await sigmoid(party, score)
        if spec.predict_output == "predictions":
            return Output("predictions", [OutputColumn("prediction", "fixed"),
                                          OutputColumn(INDICATOR, "count")],
                          [score, root.valid], party.fixed.frac_bits, [], {})
        half = party.public(np.full(n, party.fixed.encode(0.5)))
        low, high = info["label_range"]
        label = await scale(party, [root.column(spec.columns[-1])],
                            Scaling((low,), (1.0 / (high - low),)))
        said, truth = await less_than(party, np.stack([score, label[:, 0]]),
                                      np.stack([half, half]))  # 1 where below 1/2
        both = await mul(party, said, truth)
        agree = party.public(np.ones(n, np.uint64)) - said - truth + 2 * both
        correct = await mul(party, agree, root.valid)
    return Output("accuracy", [OutputColumn("correct", "count"), OutputColumn("count", "count")],
                  [correct.sum(dtype=np.uint64, keepdims=True),
                   root.valid.sum(dtype=np.uint64, keepdims=True)], party.fixed.frac_bits, [], {})


async def execute(party: Party, spec: JobSpec, schema: Schema,
                  tables: dict[str, dict[str, np.ndarray]], model: Output | None = None) -> Output:
    """The job's output shares, from this server's shares of the tables."""
    wanted = plan_columns(spec)
    shared = {name: SharedTable({f"{name}.{c}": tables[name][c] for c in wanted[name]},
                                tables[name][INDICATOR]) for name in spec.plan.tables}
    root = await run_join(party, spec.plan, shared, spec.needed_columns())
    if spec.where is not None:
        with party.stage("predicate"):
            keep = await spec.where.evaluate(party, root.columns)
            root = SharedTable(root.columns, await mul(party, root.valid, keep))
    if spec.kind == "train":
        return await _train(party, spec, root)
    if spec.kind == "predict":
        return await _predict(party, spec, root, model)
    if spec.kind == "output":
        names, shares = spec.columns, [root.column(c) for c in spec.columns]
    elif spec.kind == "aggregate":
        with party.stage("group-by"):
            grouped = await group_by(party, root, spec.group_by,
                                     [column_type(schema, c) for c in spec.group_by],
                                     spec.aggregates)
        names = spec.group_by + [a.name for a in spec.aggregates]
        shares, root = [grouped.column(n) for n in names], grouped
    else:
        info = {}
        with party.stage("statistics"):
            if spec.noise is not None:
                root = await keep_tau_rows(party, root, spec.private_key, spec.noise[2])
            sizes = {c: len(column_type(schema, c).values) for c in spec.histograms}
            values = await statistics(party, root, spec.statistics, sizes)
            if spec.noise is not None:
                values, info = _noisy(party, schema, spec, values)
        names, shares = list(values), list(values.values())
    if spec.kind != "statistics":
        names, shares = names + [INDICATOR], shares + [root.valid]
    return Output(spec.kind, [describe(schema, n) for n in names], shares,
                  schema.fixed.frac_bits, spec.means, info if spec.kind == "statistics" else {})


def _noisy(party: Party, schema: Schema, spec: JobSpec, values: dict):
    """Each server adds its own discrete Gaussian to its shares; min and max are withheld."""
    epsilon, delta, tau = spec.noise
    bounds = {c: max(abs(column_type(schema, c).min), abs(column_type(schema, c).max))
              for c in spec.statistics}
    ledger = calibrate_statistics(epsilon=epsilon, delta=delta, tau=tau, bounds=bounds,
                                  histograms=spec.histograms)
    noisy = {}
    for name, shares in values.items():
        if name.startswith(("min(", "max(")):
            continue
        grid = 1.0 if name == "count" or name.startswith("histogram(") else party.fixed.scale
        noise = discrete_gaussian(party.rng, ledger.sigmas[name] * grid, len(shares))
        noisy[name] = shares + noise.view(np.uint64)
    return noisy, {"dp_ledger": ledger.as_dict()}


def run_job_blocking(endpoints: Endpoints, data_dir: Path, schema: Schema, spec: JobSpec,
                     state: JobState, store: JobStore, accounting: Accounting,
                     cancel: threading.Event) -> None:
    """One server's whole job, in its own thread and event loop; `accounting.current` tells
    the job's stage meanwhile, and setting `cancel` stops it at its next message."""

    async def main():
        storage = Storage(data_dir)
        try:
            records = {name: storage.current(name) for name in spec.plan.tables}
            missing = [name for name, record in records.items() if record is None]
            if missing:
                raise ProtocolMismatch(f"tables not ready on server {endpoints.party_id}: "
                                       f"{', '.join(missing)}")
            versions = {name: record.upload_id for name, record in records.items()}
            tables = {name: storage.load(record) for name, record in records.items()}
        finally:
            storage.close()
        model = Output.load(store.output_folder(spec.model_job)) if spec.model_job else None
        async with open_party(endpoints, state.job_id, FixedPoint(schema.fixed.frac_bits),
                              accounting, cancel) as party:
            with party.stage("agree"):
                await agree(party, spec, versions)
            return await execute(party, spec, schema, tables, model)

    state.state = "running"
    store.save(state)
    try:
        asyncio.run(main()).save(store.output_folder(state.job_id))
        state.state = "done"
    except Exception as error:  # every failure ends the job and is reported to the client
        log.warning("job %s failed: %s", state.job_id, traceback.format_exc())
        state.state = "failed"
        state.error = ("cancelled" if cancel.is_set() else f"{type(error).__name__}: {error}")
    state.costs = {name: cost.as_dict() for name, cost in accounting.stages.items()}
    store.save(state)
