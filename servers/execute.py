"""What each kind of job computes on shares, from the tables to the release step.

The join (with its Theta constraints) and the job's `where` come first; then each kind computes
its result and hands it to servers/release.py, which decides what is stored: rows and groups
masked and shuffled, values withheld below the owners' minimum group sizes, noise added for
differentially private jobs.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from twofold.ml.features import scale
from twofold.ml.metrics import linear_sums, logistic_counts
from twofold.ml.model import ModelDescription
from twofold.ml.pipeline import TrainSpec, fit, keep_tau_rows
from twofold.ml.sgd import sigmoid
from twofold.mpc.outputs import RELEASED, Output, OutputColumn
from twofold.mpc.party import Party
from twofold.mpc.privacy import Privacy
from twofold.mpc.protocols.arithmetic import fixed_mul_public, matmul, mul, truncate
from twofold.mpc.protocols.sort import SortKey
from twofold.mpc.shares import Additive
from twofold.owners.schema import INDICATOR, Schema, key_sort_bits
from twofold.servers.exposure import analyze
from twofold.servers.jobspec import (
    AggregateSection,
    JobSpec,
    Nulls,
    PredictSection,
    RowsSection,
    StatisticsSection,
    flag_of,
    noise_ledger,
    plan_columns,
)
from twofold.servers.outputs import describe
from twofold.servers.ranges import enforce_declared
from twofold.servers.release import (
    Thresholds,
    meets,
    release_groups,
    release_rows,
    release_statistics,
    release_values,
)
from twofold.servers.rules import Rules
from twofold.sorting_join.aggregate import group_by, statistics
from twofold.sorting_join.multiway import product, run_join
from twofold.sorting_join.predicate import column_type
from twofold.sorting_join.table import SharedTable


def _sort_bits(schema: Schema, key: str) -> int:
    """The bits a sort by this (qualified) key column needs, from the schema."""
    return key_sort_bits(column_type(schema, key))


def _entity_keys(schema: Schema, root: SharedTable, entities: dict[str, str]
                 ) -> dict[str, SortKey]:
    return {table: SortKey(root.column(key), _sort_bits(schema, key), signed=False)
            for table, key in entities.items()}


async def _entities_reach_k(party: Party, schema: Schema, spec: JobSpec, root: SharedTable,
                            rules: Rules, entities: dict[str, str]) -> Additive | None:
    """Shares of one bit: among the real rows, every table with a minimum group size k has at
    least k different entities (None without such rules). A distinct count (one sort) per
    table other than the root, whose entities are the rows themselves."""
    if not rules.min_group_sizes:
        return None
    with party.stage("entities"):
        counts = await statistics(party, root, [], {}, _entity_keys(schema, root, entities))
        return await meets(party, _counts_of(rules, entities, spec.plan.root, counts))


async def _train(party: Party, schema: Schema, spec: JobSpec, section: TrainSpec,
                 root: SharedTable, rules: Rules, entities: dict[str, str]) -> Output:
    """Levels 3 and 4: the exact entity counts of every table with a k bind the model (at
    level 3 before |J| is opened, so a small join opens 0). Level 5: an exact count would break
    the guarantee, so k binds the noisy size check instead, as k x tau rows (at most tau rows
    per unit entity: without noise, at least k entities)."""
    train = replace(section, min_join_size=max(section.min_join_size, rules.min_join_size))
    if train.private_key is not None:
        train = replace(train, private_key_bits=_sort_bits(schema, train.private_key))
    enough = None
    if train.privacy is not None:  # level 5, and only level 5, is differentially private
        k = max(rules.min_group_sizes.values(), default=1)
        train = replace(train, min_join_size=max(train.min_join_size, k * train.privacy.tau))
    else:
        enough = await _entities_reach_k(party, schema, spec, root, rules, entities)
    trained = await fit(party, root, train, entities_reach_k=enough)
    description = ModelDescription(
        train.hyper, train.features, train.label, trained.scaling, train.label_range,
        train.level, train.min_join_size, trained.join_size,
        trained.ledger.as_dict() if trained.ledger else None, train.size_check)
    return await release_values(party, "model", [OutputColumn("weights", "fixed")],
                                [trained.weights], trained.released, say_withheld=True,
                                info=description.as_dict())


async def _predict(party: Party, schema: Schema, spec: JobSpec, section: PredictSection,
                   root: SharedTable, model: Output, rules: Rules,
                   entities: dict[str, str]) -> Output:
    """Predictions, or the model's metrics against a label, for the model's recipients only;
    a withheld model predicts nothing."""
    info = ModelDescription.from_dict(model.info)
    weights, released = (model.column(name) for name in ("weights", RELEASED))
    low, high = info.label_range
    root = await _limit_tau(party, schema, spec, root, section.noise)
    n = root.rows
    ones = party.public(np.full(n, party.fixed.encode(1.0)))
    with party.stage("predict"):
        x = await scale(party, [root.column(f) for f in section.features] + [ones],
                        info.scaling)
        scores = await truncate(party, await matmul(party, x, Additive(weights[:, None])))
        score = Additive(scores[:, 0])
        if info.model == "logistic":
            score = await sigmoid(party, score)
        if section.label is None:  # a probability, or a value in the label's units
            hyper = info.hyper  # |weights| grow by at most lr * R per step; |x| <= 1
            bound = (len(section.features) + 1) * hyper.iterations * (
                hyper.learning_rate * hyper.residual_bound)
            prediction = score if info.model == "logistic" else (
                await fixed_mul_public(party, score, high - low, bound)
                + party.public(np.full(n, party.fixed.encode(low))))
            enough = await _entities_reach_k(party, schema, spec, root, rules, entities)
            bits = released if enough is None else await mul(party, released, enough)
            keep = await mul(party, root.valid, Additive(np.broadcast_to(bits, (n,))))
            columns = [OutputColumn("prediction", "fixed"),
                       *[describe(schema, c) for c in section.carry]]
            return await release_rows(party, "predictions", columns,
                                      [prediction, *[root.column(c) for c in section.carry]],
                                      keep)
        label = root.column(section.label)
        if info.model == "logistic":
            sums = await logistic_counts(party, score, label, root.valid)
        else:
            sums = await linear_sums(party, score, label, root.valid, (low, high),
                                     classes=section.classes)
        counts = await statistics(party, root, [], {}, _entity_keys(schema, root, entities))
    values = {"count": counts["count"], **sums}
    described = {name: OutputColumn(name, "fixed" if name.startswith("sum_") else "count")
                 for name in values}
    return await release_statistics(
        party, described, values, _counts_of(rules, entities, spec.plan.root, counts), {},
        ledger=noise_ledger(spec, schema, info.model), kind="metrics", released=released,
        info={"model": info.model, "label": section.label, "model_job": section.model_job})


async def _limit_tau(party: Party, schema: Schema, spec: JobSpec, root: SharedTable,
                     noise: Privacy | None) -> SharedTable:
    """Under differential privacy, at most tau real rows per entity of the privacy unit."""
    if noise is None:
        return root
    key = spec.private_key
    if key is None:  # the parser names the unit of every differentially private job
        raise ValueError("differential privacy needs the key of the privacy unit")
    return await keep_tau_rows(party, root, key, noise.tau, _sort_bits(schema, key))


def _counts_of(rules: Rules, entities: dict[str, str], root_name: str, counts: dict,
               suffix: str = "", root_count: str = "count") -> Thresholds:
    """Thresholds whose counts are the named distinct counts (for the root, whose entities
    are the rows, the row count `root_count`: per histogram bin, the bin's)."""
    named = {table: counts[f"distinct({table}){suffix}" if table != root_name else root_count]
             for table in rules.min_group_sizes}
    return Thresholds(rules.min_group_sizes, named)


async def _rows(party: Party, schema: Schema, spec: JobSpec, section: RowsSection,
                root: SharedTable, rules: Rules, entities: dict[str, str]) -> Output:
    enough = await _entities_reach_k(party, schema, spec, root, rules, entities)
    keep = root.valid if enough is None else await mul(
        party, root.valid, Additive(np.broadcast_to(enough, (root.rows,))))
    return await release_rows(party, "rows", [describe(schema, c) for c in section.columns],
                              [root.column(c) for c in section.columns], keep)


async def _aggregate(party: Party, schema: Schema, spec: JobSpec, section: AggregateSection,
                     root: SharedTable, rules: Rules, entities: dict[str, str]) -> Output:
    root = await _limit_tau(party, schema, spec, root, section.noise)
    ledger = noise_ledger(spec, schema)
    grouped = await group_by(party, root, list(section.group_by),
                             [column_type(schema, c) for c in section.group_by],
                             list(section.aggregates), _entity_keys(schema, root, entities))
    names = [*section.group_by, *(a.name for a in section.aggregates)]
    thresholds = _counts_of(rules, entities, spec.plan.root, grouped.columns)
    return await release_groups(
        party, [describe(schema, n) for n in names], {n: grouped.column(n) for n in names},
        grouped.valid, thresholds, ledger=ledger, means=section.means)


async def _statistics(party: Party, schema: Schema, spec: JobSpec, section: StatisticsSection,
                      root: SharedTable, rules: Rules, entities: dict[str, str]) -> Output:
    root = await _limit_tau(party, schema, spec, root, section.noise)
    ledger = noise_ledger(spec, schema)
    sizes = {c: len(column_type(schema, c).values) for c in section.histograms}
    values = await statistics(party, root, list(section.columns), sizes,
                              _entity_keys(schema, root, entities),
                              extremes=section.noise is None)
    thresholds = _counts_of(rules, entities, spec.plan.root, values)
    bins = {f"histogram({c})": _counts_of(rules, entities, spec.plan.root, values,
                                          f" in histogram({c})", f"histogram({c})")
            for c in section.histograms}
    values = {name: v for name, v in values.items() if not name.startswith("distinct(")}
    return await release_statistics(
        party, {name: describe(schema, name) for name in values}, values, thresholds, bins,
        ledger=ledger)


async def _fill_or_drop_nulls(party: Party, root: SharedTable, nulls: Nulls) -> SharedTable:
    """A missing cell holds 0 and its flag 1: an imputed column adds flag * value (local);
    a row with a flag set in a `drop` column stops being valid (a product of the flags'
    complements)."""
    columns = dict(root.columns)
    for name, code in nulls.impute:
        columns[name] = Additive(
            columns[name] + columns[flag_of(name)] * np.int64(code).view(np.uint64))
    valid = root.valid
    if nulls.drop:
        ones = party.public(np.ones(root.rows, np.uint64))
        valid = await product(party, [valid, *(Additive(ones - columns[flag_of(c)])
                                               for c in nulls.drop)])
    return SharedTable(columns, valid)


async def execute(party: Party, spec: JobSpec, schema: Schema,
                  tables: dict[str, dict[str, Additive]], rules: Rules,
                  model: Output | None = None) -> Output:
    """The job's released output shares, from this server's shares of the tables; a
    differentially private job's output also says what it was charged, mechanism by
    mechanism, so its recipients can check the charge against the ledger."""
    output = await _computed(party, spec, schema, tables, rules, model)
    if spec.charge is not None:
        output.info["dp_charge"] = {**spec.charge.as_dict(), "mechanisms": {
            name: charge.as_dict() for name, charge in spec.mechanisms.items()}}
    return output


async def _computed(party: Party, spec: JobSpec, schema: Schema,
                    tables: dict[str, dict[str, Additive]], rules: Rules,
                    model: Output | None) -> Output:
    wanted, exposure = plan_columns(spec), analyze(spec, schema)
    with party.stage("ranges"):  # what a modified owner client uploaded, within its ranges
        tables = await enforce_declared(party, schema, tables, wanted, exposure.computed_on)
    shared = {name: SharedTable({f"{name}.{c}": tables[name][c] for c in wanted[name]},
                                tables[name][INDICATOR]) for name in spec.plan.tables}
    entities = {table: key for table, key in exposure.entities.items()
                if table in rules.min_group_sizes}  # the tables whose entities are counted
    root = await run_join(party, spec.plan, shared,
                          spec.needed_columns() | set(entities.values()))
    if spec.nulls.flags:
        with party.stage("nulls"):
            root = await _fill_or_drop_nulls(party, root, spec.nulls)
    if spec.where is not None:
        with party.stage("predicate"):
            keep = await spec.where.evaluate(party, root.columns)
            root = SharedTable(root.columns, await mul(party, root.valid, keep))
    if spec.derived:
        with party.stage("features"):  # each feature and the label, under its own text
            root = SharedTable({**root.columns, **{
                expression.text: await expression.evaluate_fixed(party, root.columns)
                for expression in spec.derived}}, root.valid)
    match spec.section:  # training and prediction account their own stages
        case TrainSpec() as section:
            return await _train(party, schema, spec, section, root, rules, entities)
        case PredictSection() as section:
            if model is None:
                raise ValueError("a [predict] job runs with its model's output")
            return await _predict(party, schema, spec, section, root, model, rules, entities)
        case RowsSection() as section:
            with party.stage("rows"):
                return await _rows(party, schema, spec, section, root, rules, entities)
        case AggregateSection() as section:
            with party.stage("aggregate"):
                return await _aggregate(party, schema, spec, section, root, rules, entities)
        case StatisticsSection() as section:
            with party.stage("statistics"):
                return await _statistics(party, schema, spec, section, root, rules, entities)
