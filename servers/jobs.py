"""Running a job on one server: load the shares, join, filter, compute, release, store.

Both servers run the same job in step. Before any work they check over their link that they
agree on the spec (its hash) and on the version of every table (upload ids).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ml.features import Scaling, scale
from ml.pipeline import fit, keep_tau_rows
from ml.sgd import sigmoid
from mpc.accounting import Accounting
from mpc.errors import ProtocolMismatch
from mpc.party import Party
from mpc.protocols.arithmetic import matmul, mul, truncate
from mpc.protocols.boolean import less_than
from mpc.ring import FixedPoint
from mpc.session import Endpoints, open_party
from owners.schema import INDICATOR, Schema
from servers.budget import BudgetLedger, spend
from servers.jobspec import JobSpec, StatisticsSection, plan_columns
from servers.outputs import RELEASED, Output, OutputColumn, describe
from owners.policy import Policy
from servers.rules import Rules, check_job
from servers.release import (Thresholds, release_groups, release_rows,
                             release_statistics, release_values)
from servers.storage import Storage
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
    """Jobs of one server on disk: data_dir/jobs/<job id>/{spec.toml, state.json, output/}."""

    def __init__(self, data_dir: Path):
        self.root = Path(data_dir) / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.states: dict[str, JobState] = {}
        for folder in sorted(self.root.iterdir()):
            state = JobState(**json.loads((folder / "state.json").read_text()))
            if state.state in ("queued", "running"):  # interrupted by a restart
                state.state, state.error = "failed", "the server restarted during the job"
            self.states[state.job_id] = state
            self.save(state)

    def add(self, state: JobState, spec_text: str) -> None:
        folder = self.root / state.job_id
        folder.mkdir()
        (folder / "spec.toml").write_text(spec_text)
        self.states[state.job_id] = state
        self.save(state)

    def save(self, state: JobState) -> None:
        (self.root / state.job_id / "state.json").write_text(json.dumps(asdict(state)))

    def spec_text(self, job_id: str) -> str:
        return (self.root / job_id / "spec.toml").read_text()

    def output_folder(self, job_id: str) -> Path:
        return self.root / job_id / "output"


def agreement_digest(spec: JobSpec, versions: dict[str, str]) -> np.ndarray:
    digest = hashlib.sha256((spec.hash + json.dumps(versions, sort_keys=True)).encode()).digest()
    return np.frombuffer(digest, dtype=np.uint64).copy()


async def agree(party: Party, spec: JobSpec, versions: dict[str, str]) -> None:
    """Both servers must run the same spec on the same table versions."""
    mine = agreement_digest(spec, versions)
    (theirs,) = await party.link.exchange(mine)
    if not np.array_equal(mine, theirs):
        raise ProtocolMismatch("the servers disagree on the job spec or on table versions")


async def _train(party: Party, spec: JobSpec, root: SharedTable, rules: Rules) -> Output:
    train = replace(spec.section, min_join_size=max(spec.section.min_join_size,
                                                    rules.min_join_size))
    trained = await fit(party, root, train)
    info = {"model": train.hyper.model, "features": list(train.features), "label": train.label,
            "centers": list(trained.scaling.centers), "factors": list(trained.scaling.factors),
            "label_range": list(train.label_range), "privacy_level": train.level,
            "min_join_size": train.min_join_size, "hyper": asdict(train.hyper),
            "join_size": trained.join_size,
            "dp_ledger": trained.ledger.as_dict() if trained.ledger else None,
            "size_check": train.size_check.as_dict() if train.size_check else None}
    return await release_values(party, "model", [OutputColumn("weights", "fixed")],
                                [trained.weights], trained.released, say_withheld=True,
                                info=info)


async def _predict(party: Party, schema: Schema, spec: JobSpec, root: SharedTable,
                   model: Output) -> Output:
    """Predictions go to the model's recipients only; a withheld model predicts nothing."""
    section, info = spec.section, model.info
    weights, released = (model.column(name) for name in ("weights", RELEASED))
    n = root.rows
    ones = party.public(np.full(n, party.fixed.encode(1.0)))
    with party.stage("predict"):
        x = await scale(party, [root.column(f) for f in section.features] + [ones],
                        Scaling(tuple(info["centers"]), tuple(info["factors"])))
        (score,) = (await truncate(party, await matmul(party, x, weights[:, None]))).T
        if info["model"] == "logistic":
            score = await sigmoid(party, score)
        if section.label is None:
            keep = await mul(party, root.valid, np.broadcast_to(released, (n,)))
            columns = [OutputColumn("prediction", "fixed"),
                       *[describe(schema, c) for c in section.carry]]
            return await release_rows(party, "predictions", columns,
                                      [score, *[root.column(c) for c in section.carry]], keep)
        half = party.public(np.full(n, party.fixed.encode(0.5)))
        low, high = info["label_range"]
        label = await scale(party, [root.column(section.label)],
                            Scaling((low,), (1.0 / (high - low),)))
        said, truth = await less_than(party, np.stack([score, label[:, 0]]),
                                      np.stack([half, half]))  # 1 where below 1/2
        both = await mul(party, said, truth)
        agree = party.public(np.ones(n, np.uint64)) - said - truth + 2 * both
        correct = await mul(party, agree, root.valid)
    return await release_values(
        party, "accuracy", [OutputColumn("correct", "count"), OutputColumn("count", "count")],
        [correct.sum(dtype=np.uint64, keepdims=True), root.valid.sum(dtype=np.uint64,
                                                                     keepdims=True)],
        released)


def entity_keys(spec: JobSpec, tables: list[str]) -> dict[str, str]:
    """Per table other than the join's root, the column that tells its entities apart in the
    joined rows (its primary key, carried up). The root's entities are the joined rows."""
    return {step.child: step.child_key for step in spec.plan.steps
            if step.carries_columns and step.child in tables}


def _counts_of(rules: Rules, entities: dict[str, str], root_name: str, counts: dict,
               suffix: str = "") -> Thresholds:
    """Thresholds whose counts are the named distinct counts (the plain count for the root)."""
    named = {table: counts[f"distinct({table}){suffix}" if table != root_name else "count"]
             for table in rules.min_group_sizes}
    return Thresholds(rules.min_group_sizes, named)


async def _aggregate(party: Party, schema: Schema, spec: JobSpec, root: SharedTable,
                     rules: Rules, entities: dict[str, str]) -> Output:
    section = spec.section
    if section.noise is not None:
        root = await keep_tau_rows(party, root, spec.private_key, section.noise.tau)
    grouped = await group_by(party, root, list(section.group_by),
                             [column_type(schema, c) for c in section.group_by],
                             list(section.aggregates),
                             {table: root.column(key) for table, key in entities.items()})
    names = [*section.group_by, *(a.name for a in section.aggregates)]
    thresholds = _counts_of(rules, entities, spec.plan.root, grouped.columns)
    return await release_groups(
        party, [describe(schema, n) for n in names], {n: grouped.column(n) for n in names},
        grouped.valid, thresholds, noise=section.noise, bounds=_bounds(schema, section),
        means=section.means)


async def _statistics(party: Party, schema: Schema, spec: JobSpec, root: SharedTable,
                      rules: Rules, entities: dict[str, str]) -> Output:
    section = spec.section
    if section.noise is not None:
        root = await keep_tau_rows(party, root, spec.private_key, section.noise.tau)
    sizes = {c: len(column_type(schema, c).values) for c in section.histograms}
    values = await statistics(party, root, list(section.columns), sizes,
                              {table: root.column(key) for table, key in entities.items()},
                              extremes=section.noise is None)
    thresholds = _counts_of(rules, entities, spec.plan.root, values)
    bins = {f"histogram({c})": _counts_of(rules, entities, spec.plan.root, values,
                                          f" in histogram({c})") if rules.min_group_sizes
            else Thresholds({}, {}) for c in section.histograms}
    values = {name: v for name, v in values.items() if not name.startswith("distinct(")}
    return await release_statistics(
        party, {name: describe(schema, name) for name in values}, values, thresholds, bins,
        noise=section.noise, bounds=_bounds(schema, section))


def _bounds(schema: Schema, section) -> dict[str, float]:
    """Largest |value| of each summed column, from the declared ranges (DP sensitivity)."""
    summed = (section.columns if isinstance(section, StatisticsSection)
              else [a.column for a in section.aggregates if a.op == "sum"])
    return {c: max(abs(column_type(schema, c).min), abs(column_type(schema, c).max))
            for c in summed}


async def execute(party: Party, spec: JobSpec, schema: Schema,
                  tables: dict[str, dict[str, np.ndarray]], rules: Rules,
                  model: Output | None = None) -> Output:
    """The job's released output shares, from this server's shares of the tables."""
    wanted = plan_columns(spec)
    shared = {name: SharedTable({f"{name}.{c}": tables[name][c] for c in wanted[name]},
                                tables[name][INDICATOR]) for name in spec.plan.tables}
    entities = entity_keys(spec, list(rules.min_group_sizes))
    root = await run_join(party, spec.plan, shared,
                          spec.needed_columns() | set(entities.values()))
    if spec.where is not None:
        with party.stage("predicate"):
            keep = await spec.where.evaluate(party, root.columns)
            root = SharedTable(root.columns, await mul(party, root.valid, keep))
    if spec.kind == "train":
        return await _train(party, spec, root, rules)
    if spec.kind == "predict":
        return await _predict(party, schema, spec, root, model)
    with party.stage(spec.kind):
        if spec.kind == "rows":
            columns = spec.section.columns
            return await release_rows(party, "rows", [describe(schema, c) for c in columns],
                                      [root.column(c) for c in columns], root.valid)
        if spec.kind == "aggregate":
            return await _aggregate(party, schema, spec, root, rules, entities)
        return await _statistics(party, schema, spec, root, rules, entities)


def run_job_blocking(endpoints: Endpoints, data_dir: Path, schema: Schema, spec: JobSpec,
                     clients: set[str], state: JobState, store: JobStore,
                     accounting: Accounting, cancel: threading.Event) -> None:
    """One server's whole job, in its own thread and event loop; `accounting.current` tells
    the job's stage meanwhile, and setting `cancel` stops it at its next message.

    The owners' rules are checked again against the exact versions the job reads, and both
    servers agree on those versions and record any privacy spend before any work."""

    async def main():
        storage = Storage(data_dir)
        try:
            records = {name: storage.current(name) for name in spec.plan.tables}
            missing = [name for name, record in records.items() if record is None]
            if missing:
                raise ProtocolMismatch(f"tables not ready on server {endpoints.party_id}: "
                                       f"{', '.join(missing)}")
            versions = {name: record.upload_id for name, record in records.items()}
            rules = check_job(spec, {name: Policy.from_json(record.policy)
                                     for name, record in records.items()}, clients)
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
    try:
        asyncio.run(main()).save(store.output_folder(state.job_id))
        state.state = "done"
    except Exception as error:  # every failure ends the job and is reported to the client
        log.warning("job %s failed: %s", state.job_id, traceback.format_exc())
        state.state = "failed"
        state.error = ("cancelled" if cancel.is_set() else f"{type(error).__name__}: {error}")
    state.costs = {name: cost.as_dict() for name, cost in accounting.stages.items()}
    store.save(state)
