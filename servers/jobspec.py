"""Job specs (TOML): what to join, filter and compute, and who receives the result.

    [job]
    recipients = ["carol"]                  # registered clients who may fetch the output
    tables = ["orders", "customers"]        # optional: default, the whole schema
    where = "orders.amount > customers.age" # optional type-2 predicate

    [output]                                # exactly one of output, aggregate, statistics
    columns = ["orders.amount", "customers.region"]

    [aggregate]
    group_by = ["customers.region"]         # empty or absent: one group
    count = true
    sum = ["orders.amount"]                 # also mean, min, max
    [statistics]
    columns = ["orders.amount"]             # count, sum, mean, variance, std, min, max
    histogram = ["customers.region"]

Every problem is refused before any work, with the spec line that causes it.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field

from ml.dp import NOISE_TAILS, calibrate_statistics
from ml.features import FeatureRangeError, scaling_for
from ml.pipeline import TrainSpec
from ml.sgd import Hyper, step_constant
from mpc.ring import PrecisionError
from owners.schema import Schema, exact
from servers.storage import ID_PATTERN
from sorting_join.aggregate import Aggregate
from sorting_join.plan import JoinPlan, PlanError, plan_join
from sorting_join.predicate import Predicate, PredicateError, column_type

KINDS = ("output", "aggregate", "statistics", "train", "predict")
MODELS = ("linear", "logistic")
EXTREME_LIMIT = 2.0 ** 60  # min and max need stored values below 2^60


class JobSpecError(ValueError):
    """A job spec that cannot run; the message names the spec line."""


@dataclass
class JobSpec:
    text: str
    kind: str
    recipients: list[str]
    plan: JoinPlan
    where: Predicate | None
    columns: list[str] = field(default_factory=list)  # output columns
    group_by: list[str] = field(default_factory=list)
    aggregates: list[Aggregate] = field(default_factory=list)
    means: list[str] = field(default_factory=list)  # derived by the recipient from sum / count
    statistics: list[str] = field(default_factory=list)
    histograms: list[str] = field(default_factory=list)
    train: TrainSpec | None = None
    noise: tuple[float, float, int] | None = None  # statistics: (epsilon, delta, tau)
    private_key: str | None = None  # statistics with noise: primary key of primary_private
    model_job: str = ""  # predict: the training job whose model is used
    predict_output: str = ""  # predict: "predictions" or "accuracy"

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def needed_columns(self) -> set[str]:
        needed = set(self.columns) | set(self.group_by) | set(self.statistics)
        if self.train is not None:
            needed |= {*self.train.features, self.train.label}
            needed |= {self.train.private_key} if self.train.private_key else set()
        needed |= {self.private_key} if self.private_key else set()
        needed |= set(self.histograms) | {a.column for a in self.aggregates if a.column}
        return needed | (self.where.columns if self.where else set())


def _line_of(text: str, needle: str) -> str:
    for number, line in enumerate(text.splitlines(), 1):
        if needle and needle in line:
            return f"line {number}"
    return "the spec"


class _Checker:
    def __init__(self, text: str, schema: Schema, plan: JoinPlan | None = None):
        self.text, self.schema, self.plan = text, schema, plan

    def fail(self, needle: str, message: str):
        raise JobSpecError(f"{_line_of(self.text, needle)}: {message}")

    def column(self, name, *, numeric=False, groupable=False, extremes=False,
               squares=False) -> str:
        if not isinstance(name, str) or "." not in name:
            self.fail(str(name), f"{name!r} must be a qualified column, table.column")
        table = name.split(".")[0]
        if table not in self.plan.tables:
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
        try:
            where = Predicate(schema, job["where"])
        except PredicateError as error:
            check.fail("where", str(error))
        for name in where.columns:
            check.column(name)
    kinds = [kind for kind in KINDS if kind in raw]
    if len(kinds) != 1:
        raise JobSpecError("the spec needs exactly one of [output], [aggregate], [statistics]")
    kind, section = kinds[0], raw[kinds[0]]
    spec = JobSpec(text, kind, recipients, plan, where)
    if kind == "output":
        spec.columns = check.names(section, "columns")
        if not spec.columns:
            check.fail("columns", "[output] needs 'columns'")
    elif kind == "aggregate":
        spec.group_by = check.names(section, "group_by", groupable=True)
        sums = check.names(section, "sum", numeric=True)
        spec.means = check.names(section, "mean", numeric=True)
        spec.aggregates = [Aggregate("count")] + [
            Aggregate("sum", c) for c in dict.fromkeys(sums + spec.means)]
        for op in ("min", "max"):
            spec.aggregates += [Aggregate(op, c)
                                for c in check.names(section, op, numeric=True, extremes=True)]
    elif kind in ("train", "predict"):
        _parse_learning(check, schema, spec, section, kind)
    else:
        spec.statistics = check.names(section, "columns", numeric=True, extremes=True,
                                      squares=True)
        spec.histograms = check.names(section, "histogram")
        for name in spec.histograms:
            if column_type(schema, name).type != "categorical":
                check.fail(name, f"a histogram needs a categorical column, {name!r} is not")
        if not spec.statistics and not spec.histograms:
            check.fail("statistics", "[statistics] needs 'columns' or 'histogram'")
        if "noise" in section:
            _parse_noise(check, schema, spec, section["noise"])
    return spec


def _number(check: _Checker, section: dict, key: str, kind=float, default=None):
    value = section.get(key, default)
    if value is None:
        check.fail(key, f"needs '{key}'")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            kind is int and not isinstance(value, int)):
        check.fail(key, f"'{key}' must be {'an integer' if kind is int else 'a number'}")
    return kind(value)


def _privacy(check: _Checker, schema: Schema, spec: JobSpec, section: dict, where: str):
    """(epsilon, delta, tau, qualified primary key of the primary private table)."""
    epsilon, delta = _number(check, section, "epsilon"), _number(check, section, "delta")
    tau = _number(check, section, "tau", int)
    if not 0 < epsilon <= 100:
        check.fail("epsilon", "epsilon must be in (0, 100]")
    if not 0 < delta < 1:
        check.fail("delta", "delta must be in (0, 1)")
    if tau < 1:
        check.fail("tau", "tau must be at least 1")
    private = schema.primary_private
    if private is None or private not in spec.plan.tables:
        check.fail(where, "differential privacy needs the schema's primary_private table in "
                          "the job's join")
    table = schema.table(private)
    return epsilon, delta, tau, f"{private}.{table.key_column(table.primary_key)}"


def _parse_noise(check: _Checker, schema: Schema, spec: JobSpec, noise) -> None:
    if not isinstance(noise, dict):
        check.fail("noise", "noise = { epsilon = ..., delta = ..., tau = ... }")
    epsilon, delta, tau, spec.private_key = _privacy(check, schema, spec, noise, "noise")
    spec.noise = (epsilon, delta, tau)


def _parse_learning(check: _Checker, schema: Schema, spec: JobSpec, section: dict,
                    kind: str) -> None:
    features = check.names(section, "features", numeric=True)
    if not features:
        check.fail("features", f"[{kind}] needs 'features', numeric columns")
    label = section.get("label")
    if label is not None or kind == "train":
        label = check.column(label, numeric=True)
    ranges = tuple((column_type(schema, f).min, column_type(schema, f).max) for f in features)
    if kind == "predict":
        spec.model_job = str(section.get("model_job", ""))
        if not ID_PATTERN.fullmatch(spec.model_job):  # the rule every job id follows
            check.fail("model_job", "[predict] needs 'model_job', the id of a training job")
        spec.predict_output = "accuracy" if label else "predictions"
        spec.columns = features + ([label] if label else [])
        return
    model = section.get("model")
    if model not in MODELS:
        check.fail("model", f"model must be one of {', '.join(MODELS)}")
    level = _number(check, section, "privacy_level", int)
    if level not in (3, 4, 5):
        check.fail("privacy_level", "privacy_level must be 3, 4 or 5")
    iterations = _number(check, section, "iterations", int)
    batch = _number(check, section, "batch_size", int)
    rate = _number(check, section, "learning_rate")
    bound = _number(check, section, "residual_bound", default=1.0)
    if iterations < 1 or batch < 1 or rate <= 0 or bound <= 0:
        check.fail("iterations", "iterations, batch_size, learning_rate and residual_bound "
                                 "must be positive")
    try:
        scaling_for([*ranges, (1.0, 1.0)], unit_norm=level == 5, fixed=schema.fixed,
                    names=[*features, "the intercept"])
    except FeatureRangeError as error:
        check.fail(error.feature, str(error))
    label_column = column_type(schema, label)
    if model == "logistic" and (label_column.min, label_column.max) != (0.0, 1.0):
        check.fail(label, f"logistic regression needs a 0/1 label; {label} ranges over "
                          f"[{label_column.min:g}, {label_column.max:g}]")
    # weights grow by at most lr * R per iteration (features in [-1, 1]); the forward product
    # of d + 1 features must stay below 2^(62 - 2f), and the step lr / batch must be
    # applicable to a batch's gradient (ml/sgd.step_constant, checked again on every step)
    frac_bits = schema.fixed.frac_bits
    limit = 2.0 ** (62 - 2 * frac_bits)
    if (len(features) + 1) * iterations * rate * bound >= limit:
        check.fail("learning_rate", "learning_rate x iterations x features would overflow the "
                                    f"fixed-point range (keep their product below {limit:g})")
    try:
        step_constant(rate / batch, batch, bound, frac_bits)
    except PrecisionError as error:
        check.fail("learning_rate", f"the step learning_rate / batch_size = {rate / batch:g} "
                                    f"cannot be applied at {frac_bits} fractional bits: {error}")
    minimum = _number(check, section, "min_join_size", int, default=1 if level == 3 else None)
    if minimum < 1:
        check.fail("min_join_size", "min_join_size must be at least 1")
    if level >= 4 and batch > minimum:
        check.fail("batch_size", f"batch_size {batch} is above the declared min_join_size "
                                 f"{minimum}")
    epsilon = delta = 0.0
    tau, private_key = 1, None
    if level == 5:
        epsilon, delta, tau, private_key = _privacy(check, schema, spec, section,
                                                    "privacy_level")
    label_range = (label_column.min, label_column.max)
    if label_range[0] == label_range[1]:
        check.fail(label, f"the label {label} has an empty range")
    spec.train = TrainSpec(tuple(features), label, ranges, label_range,
                           Hyper(model, iterations, batch, rate, bound), level, minimum,
                           epsilon, delta, tau, private_key)


def check_sizes(spec: JobSpec, schema: Schema, rows: int) -> None:
    """At submission, with the join's public row count: refuse a job whose sums could leave
    the ring. A sum over `rows` rows of values up to B needs rows * B * 2^f below 2^63, a sum
    of squares rows * B^2 * 2^f, each with the noise both servers add, if any."""
    check = _Checker(spec.text, schema, spec.plan)
    fixed = schema.fixed
    limit = 2.0 ** (63 - fixed.frac_bits)
    largest = {c: max(abs(column_type(schema, c).min), abs(column_type(schema, c).max))
               for c in {a.column for a in spec.aggregates if a.op == "sum"} | set(spec.statistics)}
    totals = {f"sum({c})": rows * largest[c] for c in largest}
    totals.update({f"sumsq({c})": rows * largest[c] ** 2 for c in spec.statistics})
    if spec.noise is not None:
        epsilon, delta, tau = spec.noise
        ledger = calibrate_statistics(epsilon=epsilon, delta=delta, tau=tau,
                                      bounds={c: largest[c] for c in spec.statistics},
                                      histograms=spec.histograms)
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

