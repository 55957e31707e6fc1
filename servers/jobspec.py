"""Job specs (TOML): what to join, filter and compute, and who receives the result.

    [job]
    recipients = ["carol"]                  # registered clients who may fetch the output
    tables = ["orders", "customers"]        # optional: default, the whole schema
    where = "orders.amount > customers.age" # optional type-2 predicate

    [output]                                # exactly one of output, aggregate, statistics,
    columns = ["orders.amount", "customers.region"]     # train, predict

    [aggregate]
    group_by = ["customers.region"]         # empty or absent: one group
    count = true
    sum = ["orders.amount"]                 # also mean, min, max
    noise = { epsilon = 1.0, delta = 1e-6, tau = 3 }   # optional: DP counts, sums, groups
    [statistics]
    columns = ["orders.amount"]             # count, sum, mean, variance, std, min, max
    histogram = ["customers.region"]
    noise = { epsilon = 1.0, delta = 1e-6, tau = 3 }   # optional

Each kind parses into its own typed section (one parser per section, PARSERS), and what
depends on the kind matches on the section's class. Every problem is refused before any work,
with the spec line that causes it.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NoReturn

import numpy as np

from twofold.ml import metrics
from twofold.ml.dp import (
    NOISE_TAILS,
    Charge,
    StatisticsLedger,
    calibrate_blocks,
    calibrate_statistics,
    count_sigma,
)
from twofold.ml.features import FeatureRangeError, scaling_for
from twofold.ml.pipeline import TrainSpec, training_ledger
from twofold.ml.sgd import Hyper, step_constant
from twofold.mpc.errors import TwofoldError
from twofold.mpc.privacy import Privacy, PrivacyError
from twofold.mpc.ring import PrecisionError
from twofold.owners.schema import Schema, exact, null_flag
from twofold.servers.storage import PathError, check_job_name
from twofold.sorting_join.aggregate import Aggregate
from twofold.sorting_join.plan import JoinPlan, PlanError, plan_join
from twofold.sorting_join.predicate import Expression, PredicateError, column_type

MODELS = ("linear", "logistic")
EXTREME_LIMIT = 2.0 ** 60  # min and max need stored values below 2^60
# a training's correlations are planned ahead, every iteration's requests with its batch's rows
# (ml/sgd.py): these bound what one job's plan holds in each server's memory
MAX_ITERATIONS = 100_000
MAX_BATCH_ROWS = 1 << 24  # iterations x batch_size
SIZE_CHECK_EPSILON = 0.1  # level 5: the noisy join-size check's epsilon, unless the spec says
ONEHOT = re.compile(r"\s*onehot\(\s*(\w+\.\w+)\s*\)\s*")


class JobSpecError(TwofoldError, ValueError):
    """A job spec that cannot run; the message names the spec line."""


@dataclass(frozen=True)
class RowsSection:
    """[output]: the joined rows' columns."""

    columns: tuple[str, ...]


@dataclass(frozen=True)
class AggregateSection:
    group_by: tuple[str, ...]
    aggregates: tuple[Aggregate, ...]
    means: tuple[str, ...]  # derived by the recipient from sum / count
    noise: Privacy | None = None


@dataclass(frozen=True)
class StatisticsSection:
    columns: tuple[str, ...]
    histograms: tuple[str, ...]
    noise: Privacy | None = None


@dataclass(frozen=True)
class PredictSection:
    model_job: str  # the training job whose model is used: its id, or submitter/id
    features: tuple[str, ...]  # expressions, as the model's features
    label: str | None  # with a label: the model's metrics; without: one prediction per row
    label_range: tuple[float, float] | None = None
    classes: bool = False  # an integer or 0/1 label: metrics count the right classes
    carry: tuple[str, ...] = ()  # row columns returned beside each prediction
    noise: Privacy | None = None  # metrics only


@dataclass(frozen=True)
class Nulls:
    """What a job does with the missing cells of the nullable columns it reads: a row with a
    missing cell in a `drop` column leaves the join (obliviously); an `impute` column's missing
    cells take a public value (its ring code)."""

    drop: tuple[str, ...] = ()
    impute: tuple[tuple[str, int], ...] = ()

    @property
    def flags(self) -> set[str]:
        return {flag_of(c) for c in (*self.drop, *(c for c, _ in self.impute))}


def flag_of(column: str) -> str:
    table, _, name = column.partition(".")
    return f"{table}.{null_flag(name)}"


Section = RowsSection | AggregateSection | StatisticsSection | TrainSpec | PredictSection
KIND_OF = {RowsSection: "rows", AggregateSection: "aggregate", StatisticsSection: "statistics",
           TrainSpec: "train", PredictSection: "predict"}


@dataclass(frozen=True)
class JobSpec:
    text: str
    recipients: tuple[str, ...]
    plan: JoinPlan
    where: Expression | None
    section: Section
    private_key: str | None = None  # DP: qualified primary key of the privacy unit
    derived: tuple[Expression, ...] = ()  # features and label, computed after the join
    nulls: Nulls = Nulls()

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def kind(self) -> str:
        """The section's name: rows, aggregate, statistics, train or predict."""
        return KIND_OF[type(self.section)]

    @property
    def output_kind(self) -> str:
        """What the job releases, in the terms of owners' policies: rows, aggregate,
        statistics, model or predictions (a model's metrics count as statistics)."""
        match self.section:
            case TrainSpec():
                return "model"
            case PredictSection(label=label):
                return "statistics" if label else "predictions"
        return self.kind

    @property
    def noise(self) -> Privacy | None:
        """The noise a non-training job adds to what it releases, if any."""
        match self.section:
            case (AggregateSection(noise=noise) | StatisticsSection(noise=noise)
                  | PredictSection(noise=noise)):
                return noise
        return None

    @property
    def privacy_level(self) -> int:
        """Training declares its level (3 opens |J| to the servers); other jobs hide |J| from
        the servers and release exact results (level 4) or noisy ones (level 5)."""
        match self.section:
            case TrainSpec(level=level):
                return level
        return 5 if self.noise is not None else 4

    @property
    def privacy(self) -> Privacy | None:
        """The job's differential-privacy parameters, if it is differentially private."""
        match self.section:
            case TrainSpec(privacy=privacy):
                return privacy
        return self.noise

    @property
    def mechanisms(self) -> dict[str, Charge]:
        """The differentially private mechanisms the job runs, by name, each with its own
        (epsilon, delta): declared parameters are per mechanism. Level 5 training adds its
        noisy size check; a noisy group-by adds partition selection, whose threshold spends
        the declared delta again (ml.dp.selection_threshold)."""
        privacy = self.privacy
        if privacy is None:
            return {}
        spent = Charge(privacy.epsilon, privacy.delta)
        match self.section:
            case TrainSpec(size_check=Privacy() as check):  # level 5 sets both
                return {"training": spent, "size check": Charge(check.epsilon, check.delta)}
            case AggregateSection():
                return {"noise": spent, "group selection": Charge(0.0, privacy.delta)}
        return {"noise": spent}

    @property
    def charge(self) -> Charge | None:
        """What the job spends from the budget of every table it reads: the sum of its
        mechanisms' (basic composition)."""
        mechanisms = self.mechanisms.values()
        return sum(mechanisms, Charge(0.0, 0.0)) if mechanisms else None

    def needed_columns(self) -> set[str]:
        needed: set[str] = set()  # training reads only its features and label (derived)
        match self.section:
            case RowsSection(columns=columns):
                needed = set(columns)
            case AggregateSection(group_by=group_by, aggregates=aggregates):
                needed = set(group_by) | {a.column for a in aggregates if a.column}
            case StatisticsSection(columns=columns, histograms=histograms):
                needed = set(columns) | set(histograms)
            case PredictSection(carry=carry):
                needed = set(carry)
        for expression in self.derived:
            needed |= expression.columns
        needed |= {self.private_key} if self.private_key else set()
        return needed | (self.where.columns if self.where else set()) | self.nulls.flags


def _line_of(text: str, needle: str) -> str:
    for number, line in enumerate(text.splitlines(), 1):
        if needle and needle in line:
            return f"line {number}"
    return "the spec"


class _Checker:
    def __init__(self, text: str, schema: Schema, plan: JoinPlan | None = None):
        self.text, self.schema, self.plan = text, schema, plan

    def fail(self, needle: str, message: str) -> NoReturn:
        raise JobSpecError(f"{_line_of(self.text, needle)}: {message}")

    def column(self, name, *, numeric=False, groupable=False, extremes=False,
               squares=False) -> str:
        if not isinstance(name, str) or "." not in name:
            self.fail(str(name), f"{name!r} must be a qualified column, table.column")
        table = name.split(".")[0]
        if table not in (self.plan.tables if self.plan is not None else ()):
            self.fail(name, f"column {name!r}: table {table!r} is not in this job's join")
        try:
            column = column_type(self.schema, name)
        except PredicateError as error:
            self.fail(name, str(error))
        if numeric and not column.numeric:
            self.fail(name, f"{name!r} is {column.type}, not numeric")
        if groupable and column.type not in ("categorical", "key", "boolean", "integer"):
            self.fail(name, f"cannot group by the {column.type} column {name!r}")
        largest = max(abs(column.min or 0.0), abs(column.max or 0.0)) * self.schema.fixed.scale
        if extremes and largest >= EXTREME_LIMIT:
            bits = 60 - self.schema.fixed.frac_bits
            self.fail(name, f"min/max need a declared range below 2^{bits}")
        fixed = self.schema.fixed
        if squares and largest ** 2 >= fixed.max_product * fixed.scale ** 2:
            self.fail(name, f"the sum of squares of {name} needs |value| below "
                            f"2^{31 - fixed.frac_bits} at {fixed.frac_bits} fractional bits; "
                            f"its declared range reaches {exact(largest / fixed.scale)}")
        return name

    def expression(self, text, key: str, *, condition: bool = False) -> Expression:
        """An expression over the join's columns (a feature, a label, a `where`)."""
        if not isinstance(text, str):
            self.fail(key, f"'{key}' needs expressions over columns, as strings")
        try:
            expression = Expression(self.schema, text, condition=condition)
        except PredicateError as error:
            self.fail(text, str(error))
        for name in expression.columns:
            self.column(name)
        return expression

    def features(self, body: dict, key: str) -> list[Expression]:
        """Feature expressions; onehot(table.column) becomes one 0/1 feature per value of a
        categorical column's vocabulary."""
        values = body.get(key, [])
        if not isinstance(values, list) or not values:
            self.fail(key, f"'{key}' needs a list of expressions over columns")
        features = []
        for value in values:
            match = ONEHOT.fullmatch(value) if isinstance(value, str) else None
            if match is None:
                features.append(self.expression(value, key))
                continue
            column = column_type(self.schema, self.column(match.group(1)))
            if column.type != "categorical":
                self.fail(value, f"onehot needs a categorical column; {match.group(1)} is "
                                 f"{column.type}")
            features += [self.expression(f"{match.group(1)} == {v!r}", key)
                         for v in column.values]
        return features

    def names(self, section: dict, key: str, **checks) -> list[str]:
        values = section.get(key, [])
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list):
            self.fail(key, f"'{key}' must be a list of columns")
        return [self.column(v, **checks) for v in values]


def parse_job_spec(text: str, schema: Schema, clients: set[str]) -> JobSpec:
    """Parse and check a job spec against the schema and the registered clients."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise JobSpecError(f"not valid TOML: {error}") from None
    check = _Checker(text, schema)
    job = raw.get("job")
    if not isinstance(job, dict):
        raise JobSpecError("the spec needs a [job] section")
    recipients = job.get("recipients")
    if not isinstance(recipients, list) or not recipients:
        check.fail("recipients", "[job] needs 'recipients', a list of client names")
    for name in recipients:
        if name not in clients:
            check.fail(str(name), f"recipient {name!r} has no registered key on the servers")
    try:
        plan = plan_join(schema, job.get("tables"))
    except PlanError as error:
        check.fail("tables", str(error))
    check.plan = plan
    where = None
    if job.get("where"):
        where = check.expression(job["where"], "where", condition=True)
    kinds = [kind for kind in PARSERS if kind in raw]
    if len(kinds) != 1:
        raise JobSpecError("the spec needs exactly one of "
                           + ", ".join(f"[{kind}]" for kind in PARSERS))
    kind, body = kinds[0], raw[kinds[0]]
    if not isinstance(body, dict):
        check.fail(kind, f"[{kind}] must be a TOML table")
    section, private_key, derived = PARSERS[kind](check, schema, plan, body)
    spec = JobSpec(text, tuple(recipients), plan, where, section, private_key, derived)
    return replace(spec, nulls=_nulls(check, schema, job, spec.needed_columns()))


def _nulls(check: _Checker, schema: Schema, job: dict, used: set[str]) -> Nulls:
    """nulls = "drop" (the default) or "impute", with impute = { column = value } for every
    nullable column the job reads."""
    nullable = sorted(c for c in used if not c.partition(".")[2].startswith("_")
                      and column_type(schema, c).nullable)
    mode, values = job.get("nulls", "drop"), job.get("impute", {})
    if mode not in ("drop", "impute"):
        check.fail("nulls", 'nulls must be "drop" or "impute"')
    if not isinstance(values, dict) or (values and mode != "impute"):
        check.fail("impute", 'impute = { "table.column" = value, ... } goes with '
                             'nulls = "impute"')
    if mode == "drop":
        return Nulls(drop=tuple(nullable))
    for name in values:
        if name not in nullable:
            check.fail(name, f"{name!r} is not a nullable column this job reads")
    missing = [c for c in nullable if c not in values]
    if missing:
        check.fail("impute", f"nulls = \"impute\" needs a value for {', '.join(missing)}")
    return Nulls(impute=tuple((c, _impute_code(check, schema, c, values[c])) for c in nullable))


def _impute_code(check: _Checker, schema: Schema, name: str, value) -> int:
    """The ring code of a public value for a missing cell: in the column's declared range or
    vocabulary."""
    column = column_type(schema, name)
    if column.type == "categorical":
        if value not in column.values:
            check.fail(name, f"impute value {value!r} is not in {name}'s vocabulary")
        return column.values.index(value)
    if isinstance(value, bool):
        value = float(value)
    low, high = column.declared_range
    if not isinstance(value, (int, float)) or not low <= value <= high:
        check.fail(name, f"impute value {value!r} must be a number in {name}'s range "
                         f"[{exact(low)}, {exact(high)}]")
    return int(schema.fixed.encode(value).view(np.int64))


# A parsed section, the qualified key of its privacy unit (if differentially private) and the
# expressions it computes after the join (features and label)
Parsed = tuple[Section, str | None, tuple[Expression, ...]]


def _parse_rows(check: _Checker, schema: Schema, plan: JoinPlan, body: dict) -> Parsed:
    section = RowsSection(tuple(check.names(body, "columns")))
    if not section.columns:
        check.fail("columns", "[output] needs 'columns'")
    return section, None, ()


def _parse_aggregate(check: _Checker, schema: Schema, plan: JoinPlan, body: dict) -> Parsed:
    group_by = check.names(body, "group_by", groupable=True)
    sums = check.names(body, "sum", numeric=True)
    means = check.names(body, "mean", numeric=True)
    aggregates = [Aggregate("count")] + [Aggregate("sum", c) for c in dict.fromkeys(sums + means)]
    for op in ("min", "max"):
        aggregates += [Aggregate(op, c)
                       for c in check.names(body, op, numeric=True, extremes=True)]
    noise, private_key = _noise(check, schema, plan, body)
    if noise is not None and any(a.op in ("min", "max") for a in aggregates):
        check.fail("noise", "min and max cannot be released with noise; drop them or the noise")
    return (AggregateSection(tuple(group_by), tuple(aggregates), tuple(means), noise),
            private_key, ())


def _parse_statistics(check: _Checker, schema: Schema, plan: JoinPlan, body: dict) -> Parsed:
    columns = check.names(body, "columns", numeric=True, extremes=True, squares=True)
    histograms = check.names(body, "histogram")
    for name in histograms:
        if column_type(schema, name).type != "categorical":
            check.fail(name, f"a histogram needs a categorical column, {name!r} is not")
    if not columns and not histograms:
        check.fail("statistics", "[statistics] needs 'columns' or 'histogram'")
    noise, private_key = _noise(check, schema, plan, body)
    return StatisticsSection(tuple(columns), tuple(histograms), noise), private_key, ()


def _number(check: _Checker, section: dict, key: str, kind=float, default=None):
    value = section.get(key, default)
    if value is None:
        check.fail(key, f"needs '{key}'")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            kind is int and not isinstance(value, int)):
        check.fail(key, f"'{key}' must be {'an integer' if kind is int else 'a number'}")
    return kind(value)


def _privacy(check: _Checker, schema: Schema, plan: JoinPlan, body: dict, where: str):
    """(Privacy, qualified primary key of the privacy unit) from epsilon, delta, tau and unit
    in body; the unit is the table whose entities contribute at most tau joined rows each
    (default: the schema's primary_private table)."""
    for key in ("epsilon", "delta", "tau"):
        _number(check, body, key, int if key == "tau" else float)
    try:
        privacy = Privacy(epsilon=float(body["epsilon"]), delta=float(body["delta"]),
                          tau=body["tau"])
    except PrivacyError as error:
        check.fail(str(error).split()[0], str(error))
    unit = body.get("unit", schema.primary_private)
    if unit is None:
        check.fail(where, "differential privacy needs a unit, the table whose entities it "
                          "protects: unit = \"TABLE\" (or the schema's primary_private)")
    if unit not in plan.tables:
        check.fail("unit" if "unit" in body else where,
                   f"the privacy unit {unit!r} must be a table of the job's join "
                   f"({', '.join(plan.tables)})")
    table = schema.table(unit)
    return privacy, f"{unit}.{table.key_column(table.primary_key)}"


def _noise(check: _Checker, schema: Schema, plan: JoinPlan, body: dict):
    """(Privacy or None, private key or None) of an optional noise = {...} entry."""
    if "noise" not in body:
        return None, None
    if not isinstance(body["noise"], dict):
        check.fail("noise", "noise = { epsilon = ..., delta = ..., tau = ... }")
    return _privacy(check, schema, plan, body["noise"], "noise")


def _parse_prediction(check: _Checker, schema: Schema, plan: JoinPlan, body: dict) -> Parsed:
    if "features" not in body:  # the client fills in the model's before it sends the spec
        check.fail("[predict]", "[predict] needs the model's 'features' (twofold job and "
                                "Client fill them in from the model when left out)")
    features = check.features(body, "features")
    label = label_range = None
    classes = False
    if body.get("label") is not None:
        label = check.expression(body["label"], "label")
        label_range = (label.low, label.high)
        limit = 2.0 ** ((62 - 2 * schema.fixed.frac_bits) / 2)
        if max(abs(label.low), abs(label.high), label.high - label.low) >= limit:
            check.fail(label.text, f"metrics square the label and its errors: {label.text} "
                                   f"must lie within +-{limit:g} at {schema.fixed.frac_bits} "
                                   "fractional bits")
        plain = label.text in label.columns and column_type(schema, label.text).type in (
            "integer", "boolean")
        classes = label.kind == "condition" or plain
    model_job = str(body.get("model_job", ""))
    try:
        check_job_name(model_job)  # as clients name jobs; the servers resolve it at submission
    except PathError:
        check.fail("model_job", "[predict] needs 'model_job', the id of a training job (or "
                                "submitter/id)")
    carry = check.names(body, "columns")
    if carry and label is not None:
        check.fail("columns", "'columns' go beside predictions; a job with a label has none")
    noise, private_key = _noise(check, schema, plan, body)
    if noise is not None and label is None:
        check.fail("noise", "noise applies to metrics: give the label")
    derived = (*features, *([label] if label else []))
    section = PredictSection(model_job, tuple(f.text for f in features),
                             label.text if label else None, label_range, classes, tuple(carry),
                             noise)
    return section, private_key, derived


def _parse_training(check: _Checker, schema: Schema, plan: JoinPlan, body: dict) -> Parsed:
    features = check.features(body, "features")
    label = check.expression(body.get("label"), "label")
    ranges = tuple((f.low, f.high) for f in features)
    model = body.get("model")
    if model not in MODELS:
        check.fail("model", f"model must be one of {', '.join(MODELS)}")
    level = _number(check, body, "privacy_level", int)
    if level not in (3, 4, 5):
        check.fail("privacy_level", "privacy_level must be 3, 4 or 5")
    iterations = _number(check, body, "iterations", int)
    batch = _number(check, body, "batch_size", int)
    rate = _number(check, body, "learning_rate")
    bound = _number(check, body, "residual_bound", default=1.0)
    if iterations < 1 or batch < 1 or rate <= 0 or bound <= 0:
        check.fail("iterations", "iterations, batch_size, learning_rate and residual_bound "
                                 "must be positive")
    try:
        scaling_for([*ranges, (1.0, 1.0)], unit_norm=level == 5, fixed=schema.fixed,
                    names=[*(f.text for f in features), "the intercept"])
    except FeatureRangeError as error:
        check.fail(error.feature, str(error))
    if model == "logistic" and (label.low, label.high) != (0.0, 1.0):
        check.fail(label.text, f"logistic regression needs a 0/1 label; {label.text} ranges "
                               f"over [{label.low:g}, {label.high:g}]")
    # weights grow by at most lr * R per iteration (features in [-1, 1]); the forward product
    # of d + 1 features must stay below 2^(62 - 2f), and the step lr / batch must be
    # applicable to a batch's gradient (ml/sgd.step_constant, checked again on every step)
    frac_bits = schema.fixed.frac_bits
    limit = 2.0 ** (62 - 2 * frac_bits)
    if (len(features) + 1) * iterations * rate * bound >= limit:
        check.fail("learning_rate", "learning_rate x iterations x features would overflow the "
                                    f"fixed-point range (keep their product below {limit:g})")
    if iterations > MAX_ITERATIONS or iterations * batch > MAX_BATCH_ROWS:
        check.fail("iterations", f"at most {MAX_ITERATIONS} iterations and {MAX_BATCH_ROWS} "
                                 "rows in all (iterations x batch_size): the servers plan a "
                                 "training's correlations ahead, in memory")
    try:
        step_constant(rate / batch, batch, bound, frac_bits)
    except PrecisionError as error:
        check.fail("learning_rate", f"the step learning_rate / batch_size = {rate / batch:g} "
                                    f"cannot be applied at {frac_bits} fractional bits: {error}")
    minimum = _number(check, body, "min_join_size", int, default=1 if level == 3 else None)
    if minimum < 1:
        check.fail("min_join_size", "min_join_size must be at least 1")
    if level >= 4 and batch > minimum:
        check.fail("batch_size", f"batch_size {batch} is above the declared min_join_size "
                                 f"{minimum}")
    privacy = size_check = private_key = None
    if level == 5:
        privacy, private_key = _privacy(check, schema, plan, body, "privacy_level")
        check_epsilon = _number(check, body, "size_check_epsilon", default=SIZE_CHECK_EPSILON)
        try:
            size_check = Privacy(epsilon=check_epsilon, delta=privacy.delta, tau=privacy.tau)
        except PrivacyError as error:
            check.fail("size_check_epsilon", f"size_check_epsilon: {error}")
    label_range = (label.low, label.high)
    if label_range[0] == label_range[1]:
        check.fail(label.text, f"the label {label.text} has an empty range")
    section = TrainSpec(tuple(f.text for f in features), label.text, ranges, label_range,
                        Hyper(model, iterations, batch, rate, bound), level, minimum,
                        privacy, size_check, private_key)
    return section, private_key, (*features, label)


PARSERS: dict[str, Callable[[_Checker, Schema, JoinPlan, dict], Parsed]] = {
    "output": _parse_rows, "aggregate": _parse_aggregate, "statistics": _parse_statistics,
    "train": _parse_training, "predict": _parse_prediction}  # by the spec's TOML table


def noise_ledger(spec: JobSpec, schema: Schema, model: str | None = None
                 ) -> StatisticsLedger | None:
    """The noise calibration of a job's released values (statistics, group-by, a model's
    metrics) from the spec and the schema alone: at submission, which refuses what cannot be
    calibrated, and when the job runs. model: a [predict] job's model kind."""
    section, noise = spec.section, spec.noise
    if noise is None:
        return None
    match section:
        case PredictSection(label_range=(low, high)):  # noise: metrics against a label
            if model is None:
                raise ValueError("the noise on a model's metrics depends on the model's kind")
            label = next(e for e in spec.derived if e.text == section.label)
            return calibrate_blocks(privacy=noise, row_bounds=metrics.row_bounds(
                model, label.stored_range(), (low, high), schema.fixed, section.classes))
        case StatisticsSection():
            histograms, squares = list(section.histograms), True
        case AggregateSection():
            histograms, squares = [], False
        case _:
            return None  # the parser gives noise to no other section
    return calibrate_statistics(privacy=noise, bounds=_largest(schema, _summed(section)),
                                histograms=histograms, frac_bits=schema.fixed.frac_bits,
                                squares=squares)


def _summed(section: StatisticsSection | AggregateSection) -> list[str]:
    """The columns whose sums statistics or a group-by release."""
    if isinstance(section, StatisticsSection):
        return list(section.columns)
    return [a.column for a in section.aggregates if a.op == "sum" and a.column is not None]


def _largest(schema: Schema, columns) -> dict[str, float]:
    """Largest declared |value| of each column."""
    return {c: max(abs(bound) for bound in column_type(schema, c).declared_range)
            for c in columns}


def check_sizes(spec: JobSpec, schema: Schema, rows: int, model: str | None = None) -> None:
    """At submission, with the join's public row count: refuse a job whose noise cannot be
    calibrated (from the inputs the job will calibrate with) or whose sums could leave the
    ring. A sum over `rows` rows of values up to B needs rows * B * 2^f below 2^63, a sum of
    squares rows * B^2 * 2^f, each with the noise both servers add, if any. model: a
    [predict] job's model kind."""
    section = spec.section
    check = _Checker(spec.text, schema, spec.plan)
    try:
        ledger = noise_ledger(spec, schema, model)
        match section:
            case TrainSpec(level=5, size_check=Privacy() as size_check):
                # as fit will; the owners' min_join_size floor, applied then, calibrates nothing
                training_ledger(section, rows, schema.fixed.frac_bits)
                count_sigma(size_check)
    except PrivacyError as error:
        check.fail("epsilon", str(error))
    match section:
        case StatisticsSection():
            summed, squared = set(section.columns), set(section.columns)
        case AggregateSection():
            summed, squared = set(_summed(section)), set()
        case _:
            return
    fixed = schema.fixed
    limit = 2.0 ** (63 - fixed.frac_bits)
    largest = _largest(schema, summed)
    totals = {f"sum({c})": rows * largest[c] for c in summed}
    totals.update({f"sumsq({c})": rows * largest[c] ** 2 for c in squared})
    if ledger is not None:
        totals = {name: total + NOISE_TAILS * ledger.sigmas[name] for name, total in totals.items()}
    for name, total in totals.items():
        if total >= limit:
            column = name[name.index("(") + 1:-1]
            check.fail(column, f"{name} over {rows} rows can reach {exact(total)}, beyond "
                               f"2^{63 - fixed.frac_bits} at {fixed.frac_bits} fractional bits; "
                               f"narrow the declared range of {column}")


def plan_columns(spec: JobSpec) -> dict[str, list[str]]:
    """Per table, the stored columns the job reads (keys included)."""
    wanted: dict[str, list[str]] = {name: [] for name in spec.plan.tables}
    keys = {s.parent_key for s in spec.plan.steps} | {s.child_key for s in spec.plan.steps}
    # sorted: both servers stack columns by position, and set order differs between processes
    for name in sorted(spec.needed_columns() | keys):
        table, _, column = name.partition(".")
        wanted[table].append(column)
    return wanted

