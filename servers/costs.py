"""The expected rounds, bytes and seconds of a job, for `twofold job explain`, before it runs.

Every protocol's rounds and bytes depend on public sizes only (docs/mpc.md, "Protocols and
their costs"; each protocol's docstring), so a job's costs follow from its spec and its
tables' public row counts: this module walks the spec as servers/execute.py runs it, stage by
stage (the stages the servers account, mpc/accounting.py), and adds up the protocols each
stage calls. It models a dealer's correlations (the default); with OT the rounds are alike and
the bytes differ (docs/mpc.md). Bytes are what each server sends online, the mean of the two
(a few protocols are asymmetric), message framing included. Not known before a run: level 3
training shuffles the |J| real rows, which it opens (counted here as all N rows); a refused
job's entity counts (the rules that would ask for them do not apply). A differentially
private job's noise is local: it costs no rounds.

Seconds are an estimate: each protocol's per-value time at 2^20 values from `twofold bench
mpc`, plus a round's latency from `twofold bench ml`, both from RATES below.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field

from twofold.mpc.protocols.arithmetic import ONE_WAY_OPENING
from twofold.mpc.protocols.boolean import (
    FAN_IN_4_WORDS,
    RIPPLE_ADDERS_FROM,
    RIPPLE_COMPARISONS_FROM,
)
from twofold.owners.schema import INDICATOR, NULL_PREFIX, Schema, key_sort_bits
from twofold.servers.exposure import analyze
from twofold.servers.jobspec import (
    AggregateSection,
    JobSpec,
    PredictSection,
    RowsSection,
    StatisticsSection,
    TrainSpec,
    plan_columns,
)
from twofold.servers.ranges import declared_bounds
from twofold.sorting_join.aggregate import group_key_bits
from twofold.sorting_join.predicate import Expression, column_type

# Seconds per value of each protocol at n = 2^20 with a dealer, correlations included (`twofold
# bench mpc`, docs/mpc.md "Benchmarks": the idle 2-core machine, 2026-12-01 08:26 UTC), and a
# round's latency with its local work (`twofold bench ml`, docs/ml.md: training's 9 rounds per
# iteration, 2026-12-01 08:33 UTC, same machine).
RATES_MEASURED = "2026-12-01 on the idle 2-core machine by bench mpc and bench ml"
RATES = {
    "mul": 0.062 / 2**20,
    "fixed_mul": 0.102 / 2**20,
    "trunc": 0.042 / 2**20,
    "lt": 0.125 / 2**20,
    "eq": 0.112 / 2**20,
    "shuffle": 0.140 / 2**21,  # per value of each column (the benchmark shuffles 2)
    "sort": 7.1 / 2**20 / 32,  # per row and key bit (sort32; the 64-bit sort: 13.8 s)
    "round": 0.5e-3,
}
MESSAGE_BYTES = 90  # framing and header of one message (measured: mul of 100 values, 1,697 B)
SMALL = 64 * FAN_IN_4_WORDS  # comparisons with a dealer use fan-in-4 trees up to here


@dataclass
class Cost:
    rounds: int = 0
    bytes: float = 0.0
    seconds: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.rounds + other.rounds, self.bytes + other.bytes,
                    self.seconds + other.seconds)

    def as_dict(self) -> dict:
        return {"rounds": self.rounds, "bytes": round(self.bytes),
                "seconds": round(self.seconds, 4)}


NOTHING = Cost()


def _op(n: float, rounds: int, per_value: float, rate: float) -> Cost:
    """One protocol call on n values: its rounds, per_value bytes per value sent by each
    server, one message per round, and rate seconds per value."""
    if n <= 0:
        return NOTHING
    return Cost(rounds, per_value * n + MESSAGE_BYTES * rounds, rate * n + RATES["round"] * rounds)


def mul(n: float) -> Cost:
    return _op(n, 1, 16, RATES["mul"])


def reveal(n: float) -> Cost:
    return _op(n, 1, 8, RATES["mul"] / 2)


def flag_rows(n: float, columns: int) -> Cost:
    return _op(n, 1, 8 * columns + 1 / 8, RATES["mul"] * columns / 2) if columns else NOTHING


def truncate(n: float) -> Cost:  # from ONE_WAY_OPENING: 8 bytes from server 1, a bit back
    return _op(n, 1, 8, RATES["trunc"]) if n < ONE_WAY_OPENING else _op(n, 2, 4, RATES["trunc"])


def fixed_mul(n: float) -> Cost:
    return (_op(n, 2, 24, RATES["fixed_mul"]) if n < ONE_WAY_OPENING
            else _op(n, 3, 20, RATES["fixed_mul"]))


def _words(n: float) -> float:
    """Bit planes pack 64 values a word: small comparisons cost by the word."""
    return 64 * math.ceil(n / 64)


def msb(n: float) -> Cost:
    """XOR shares of n values' msbs: fan-in-4 trees up to SMALL values, then binary trees,
    then (from RIPPLE_COMPARISONS_FROM) ripple carries (mpc/protocols/boolean.msb_bits)."""
    if n <= SMALL:
        return _op(n, 4, 34 * _words(n) / n if n else 0, RATES["lt"])
    if n < RIPPLE_COMPARISONS_FROM:
        return _op(n, 7, 48, RATES["lt"])
    return _op(n, 63, 16, RATES["lt"])


def bits_to_arith(n: float) -> Cost:
    return _op(n, 1, 1 / 8, 0)


def less_than(n: float) -> Cost:
    return msb(n) + bits_to_arith(n) if n > 0 else NOTHING


def equal(n: float) -> Cost:
    if n <= 0:
        return NOTHING
    bits = _op(n, 3, 10.5 * _words(n) / n, RATES["eq"]) if n <= SMALL else _op(
        n, 6, 16, RATES["eq"])
    return bits + bits_to_arith(n)


def bits_times(n: float) -> Cost:
    return _op(n, 1, 8 + 1 / 8, RATES["mul"] / 2)


def clamp_public(n: float, lowered: float) -> Cost:
    """n values clamped, `lowered` of them to a low bound other than 0: one msb_bits call on
    the values and their differences with the bounds, one round of ANDs, one bits_times."""
    ands = n + lowered
    return msb(2 * n + lowered) + _op(ands, 1, 2 / 8, 0) + bits_times(2 * n)


def shuffle(n: float, columns: int) -> Cost:
    return _op(n, 2, 8 * columns, RATES["shuffle"] * columns)


def apply_permutation(n: float, columns: int) -> Cost:
    return shuffle(n, columns + 1) + reveal(n)


def product(n: float, factors: int) -> Cost:
    """The product of `factors` 0/1 vectors of n values, a tree of multiplications."""
    cost = NOTHING
    while factors > 1:
        cost += mul(n * (factors // 2))
        factors -= factors // 2
    return cost


def scan(n: int, columns: int, op: str = "sum") -> Cost:
    """A segmented scan (mpc/protocols/scan.py): per level of the up- and down-sweep one
    row-broadcast product of its pairs; min and max add a comparison and a multiplexer."""
    cost, step = NOTHING, 1
    while step < n:
        for pairs in (n // (2 * step), max(0, math.ceil((n - 3 * step + 1) / (2 * step)))):
            if pairs:
                cost += flag_rows(pairs, 1 + columns)
                if op in ("min", "max"):
                    cost += less_than(columns * pairs) + mul(columns * pairs)
        step *= 2
    return cost


def sort(n: float, widths: list[int], columns: int) -> Cost:
    """Radix sort of n rows by keys of these widths, moving `columns` columns
    (mpc/protocols/sort.py): each key's A2B (Kogge-Stone below 2^15 rows: ceil(log2 b) + 1
    rounds; ripple-carry from there: b - 1), then 3 rounds per key bit, two bits a pass (for
    one 64-bit key below 2^15 rows, 3b + 14 rounds and about 24b + 250 bytes per row)."""
    if n < 2:
        return NOTHING
    passes = math.ceil(sum(widths) / 2)
    wide = [b for b in widths if b > 1]  # a 1-bit key's shares are its XOR shares already
    if n < RIPPLE_ADDERS_FROM:
        rounds = 6 * passes + 7 + sum(math.ceil(math.log2(b)) + 1 for b in wide)
        per_row = 48 * passes + 48 + sum(6.5 + 38.4 * math.log2(b) for b in wide)
    else:
        rounds = 6 * passes + 8 + sum(b - 1 for b in wide)
        per_row = 48 * passes + 24 + sum(0.9 * b for b in wide)
    return _op(n, rounds, per_row + 8 * (columns - 1),
               RATES["sort"] * 2 * passes + RATES["shuffle"] * columns)


def first_occurrences(n: float, widths: list[int]) -> Cost:
    """sorting_join.aggregate.first_occurrences: one sort (by a dummy bit, then the keys), the
    starts, a permutation back."""
    return (sort(n, [1, *widths], 2 + len(widths)) + starts(n, len(widths)) + mul(n)
            + apply_permutation(n, 1))


def starts(n: float, keys: int) -> Cost:
    return equal(keys * (n - 1)) + product(n - 1, keys) if n >= 2 and keys else NOTHING


@dataclass
class _Job:
    """What a stage's costs depend on: the spec, the schema, the tables' row counts, the
    tables whose entities the owners' minimum group sizes count (table -> its entity key) and
    a prediction's model kind."""

    spec: JobSpec
    schema: Schema
    rows: dict[str, int]
    entities: dict[str, str]
    model: str | None  # a prediction's model kind: linear or logistic
    stages: dict[str, Cost] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.rows[self.spec.plan.root]

    def add(self, stage: str, cost: Cost) -> None:
        if cost.rounds:
            self.stages[stage] = self.stages.get(stage, NOTHING) + cost

    def key_bits(self, key: str) -> int:
        return key_sort_bits(column_type(self.schema, key))


def estimate(spec: JobSpec, schema: Schema, rows: dict[str, int], entities: dict[str, str],
             model: str | None = None) -> dict[str, Cost]:
    """Each stage's expected cost, in the order the job runs them. rows: every table's public
    row count; entities: table -> entity key, for the tables with a minimum group size;
    model: a prediction's model kind (linear or logistic)."""
    job = _Job(spec, schema, rows, entities, model)
    _ranges(job)
    _join(job)
    if spec.nulls.drop:
        job.add("nulls", product(job.n, 1 + len(spec.nulls.drop)))
    if spec.where is not None:
        job.add("predicate", _condition(spec.where, spec.where.tree, job.n) + mul(job.n))
    for expression in spec.derived:
        job.add("features", _expression(expression, job.n))
    match spec.section:
        case RowsSection(columns=columns):
            job.add("entities", _entities(job))
            job.add("rows", mul(job.n) if job.entities else NOTHING)  # kept if they reach k
            job.add("release", flag_rows(job.n, len(columns)) + shuffle(job.n, len(columns) + 1))
        case AggregateSection() as section:
            _aggregate(job, section)
        case StatisticsSection() as section:
            _statistics(job, section)
        case TrainSpec() as section:
            _train(job, section)
        case PredictSection() as section:
            _predict(job, section)
    return job.stages


def total(stages: dict[str, Cost]) -> Cost:
    return sum(stages.values(), NOTHING)


def _ranges(job: _Job) -> None:
    """servers/ranges.enforce_declared: the indicators and null flags made bits, the columns
    computed on clamped to their declared ranges."""
    wanted = plan_columns(job.spec)
    flags = sum(job.rows[table] * (1 + sum(c.startswith(NULL_PREFIX) for c in columns
                                           if c != INDICATOR))
                for table, columns in wanted.items())
    cost = equal(flags)
    clamped = lowered = nullable = 0
    for table, columns in analyze(job.spec, job.schema).computed_on.items():
        for name in columns:
            column = job.schema.table(table).column(name)
            if column.type == "key":
                continue
            clamped += job.rows[table]
            lowered += job.rows[table] * (declared_bounds(job.schema, job.schema.table(table),
                                                          name)[0] != 0)
            nullable += job.rows[table] * column.nullable
    job.add("ranges", cost + (clamp_public(clamped, lowered) if clamped else NOTHING)
            + (mul(nullable) if nullable else NOTHING))


def _join(job: _Job) -> None:
    """sorting_join/multiway.run_join: per binary join one sort, propagate and compaction."""
    plan = job.spec.plan
    wanted = plan_columns(job.spec)
    columns = {table: {f"{table}.{c}" for c in wanted[table]} for table in plan.tables}
    needed = (job.spec.needed_columns() | set(job.entities.values())
              | {c for pair in plan.theta for c in pair})
    for step in plan.steps:
        carry = len(columns[step.child] & needed) if step.carries_columns else 0
        if step.carries_columns:
            columns[step.parent] |= columns[step.child] & needed
        parent, n = job.rows[step.parent], job.rows[step.parent] + job.rows[step.child]
        if parent == 0:
            continue
        job.add("sort", sort(n, [step.key_bits, 1], 4 + carry))
        job.add("propagate", scan(n, 2 + carry, "copy") + equal(n) + mul(n))
        job.add("compact", apply_permutation(n, 1 + carry) + mul(parent))
    if plan.theta:
        job.add("theta", equal(len(plan.theta) * job.n) + product(job.n, 1 + len(plan.theta)))


def _value(expression: Expression, node, n: int) -> Cost:
    """sorting_join/predicate._Evaluator.value: products of two values and scalings cost."""
    constants = expression.constants
    if isinstance(node, ast.Name | ast.Attribute | ast.Constant) or id(node) in constants:
        return NOTHING
    if isinstance(node, ast.UnaryOp):
        return _value(expression, node.operand, n)
    if isinstance(node.op, ast.Div):
        return _value(expression, node.left, n) + truncate(n)
    if isinstance(node.op, ast.Mult) and (id(node.left) in constants
                                          or id(node.right) in constants):
        other = node.right if id(node.left) in constants else node.left
        return _value(expression, other, n) + truncate(n)
    cost = _value(expression, node.left, n) + _value(expression, node.right, n)
    return cost + (fixed_mul(n) if isinstance(node.op, ast.Mult) else NOTHING)


def _condition(expression: Expression, node, n: int) -> Cost:
    """sorting_join/predicate._Evaluator.condition."""
    if isinstance(node, ast.BoolOp):
        cost = _condition(expression, node.values[0], n)
        for value in node.values[1:]:
            cost += _condition(expression, value, n) + mul(n)
        return cost
    if isinstance(node, ast.UnaryOp):
        return _condition(expression, node.operand, n)
    left, (op,), (right,) = node.left, node.ops, node.comparators
    if isinstance(op, ast.In | ast.NotIn):
        return _value(expression, left, n) + sum(
            (equal(n) for _ in {ast.dump(item) for item in right.elts}), NOTHING)
    operands = _value(expression, left, n) + _value(expression, right, n)
    return operands + (equal(n) if isinstance(op, ast.Eq | ast.NotEq) else less_than(n))


def _expression(expression: Expression, n: int) -> Cost:
    if expression.kind == "condition":
        return _condition(expression, expression.tree, n)
    return _value(expression, expression.tree, n)


def _entities(job: _Job) -> Cost:
    """The distinct counts of the tables with a minimum group size, and the comparison with
    their k (servers/execute._entities_reach_k)."""
    if not job.entities:
        return NOTHING
    counts = [first_occurrences(job.n, [job.key_bits(key)])
              for table, key in job.entities.items() if table != job.spec.plan.root]
    return (sum(counts, NOTHING) + less_than(len(job.entities))
            + product(1, len(job.entities)))


def _tau(job: _Job, columns: int) -> None:
    """ml/pipeline.keep_tau_rows: at most tau rows per entity of the privacy unit."""
    if job.spec.private_key is None:
        return
    n = job.n
    job.add("tau", sort(n, [job.key_bits(job.spec.private_key)], 2 + columns) + equal(n - 1)
            + scan(n, 1) + less_than(n) + mul(n))


def _aggregate(job: _Job, section: AggregateSection) -> None:
    """sorting_join/aggregate.group_by, then servers/release.release_groups."""
    n = job.n
    if section.noise is not None:
        _tau(job, len(job.spec.needed_columns()))
    types = [column_type(job.schema, c) for c in section.group_by]
    numeric = [t for t in types if t.type not in ("categorical", "key")]
    cost = mul(n * len(numeric)) + truncate(
        n * sum(t.type != "decimal" for t in numeric))
    widths = [group_key_bits(t, job.schema.fixed) for t in types]
    marks = 0
    for key in job.entities.values():
        cost += first_occurrences(n, [*widths, job.key_bits(key)])
        marks += 1
    sums = sum(a.op == "sum" for a in section.aggregates)
    extremes = [a.op for a in section.aggregates if a.op in ("min", "max")]
    if types:
        cost += sort(n, widths, len(types) + 1 + marks + sums + len(extremes))
        cost += starts(n, len(types))
    cost += flag_rows(n, sums) + scan(n, 1 + marks + sums)
    for op in extremes:
        cost += mul(n) + scan(n, 1, op)
    job.add("aggregate", cost + equal(n) + mul(n))
    release = NOTHING
    if section.noise is not None:
        release = less_than(n) + mul(n)
    elif job.entities:
        release = less_than(len(job.entities) * n) + product(n, len(job.entities)) + mul(n)
    names = len(section.group_by) + len(section.aggregates)
    job.add("release", release + flag_rows(n, names) + shuffle(n, names + 1))


def _extremes(n: int, columns: int) -> Cost:
    """sorting_join/aggregate._reduce_extreme: halving, one comparison per level."""
    cost, width = NOTHING, n
    while width > 1:
        half = width // 2
        cost += less_than(columns * half) + mul(columns * half)
        width -= half
    return cost


def _statistics(job: _Job, section: StatisticsSection) -> None:
    """sorting_join/aggregate.statistics, then servers/release.release_statistics."""
    n, k = job.n, len(section.columns)
    if section.noise is not None:
        _tau(job, len(job.spec.needed_columns()))
    cost = NOTHING
    if k:
        cost += flag_rows(n, k) + fixed_mul(k * n)
        if section.noise is None and n:
            cost += mul(k * n) + mul(k * n) + _extremes(n, k) + _extremes(n, k)
    sizes = [len(column_type(job.schema, c).values) for c in section.histograms]
    for size in sizes:
        cost += equal(size * n) + flag_rows(n, size)
    for table, key in job.entities.items():
        if table == job.spec.plan.root:
            continue
        cost += first_occurrences(n, [job.key_bits(key)])
        for size in sizes:
            cost += first_occurrences(n, [max(1, (size - 1).bit_length()), job.key_bits(key)])
            cost += flag_rows(n, size)
    job.add("statistics", cost)
    values = 1 + k * (2 if section.noise is not None else 4) + sum(sizes)
    release = NOTHING
    if job.entities:
        for size in sizes:
            release += less_than(len(job.entities) * size) + product(size, len(job.entities))
            release += equal(size) + product(1, 2 * size) + mul(size)
        release += less_than(len(job.entities)) + product(1, len(job.entities))
    job.add("release", release + mul(values))


def _train(job: _Job, section: TrainSpec) -> None:
    """ml/pipeline.fit: the size check, scaling, purification (levels 3 and 4; level 3 shuffles
    the |J| real rows, counted here as all N) or calibration (level 5), then ml/sgd.train."""
    n, d = job.n, len(section.features) + 1
    if section.level == 5:
        _tau(job, d)
    else:  # at level 3 every row stops being real if not (a product outside every stage)
        job.add("entities", _entities(job)
                + (mul(n) if job.entities and section.level == 3 else NOTHING))
    if section.level >= 4:
        job.add("size check", less_than(1) + (mul(1) if job.entities else NOTHING))
    job.add("scale", truncate(n * d) + truncate(n))
    if section.level == 3:
        job.add("purify", sort(n, [1], d + 2) + reveal(1) + shuffle(n, d + 1))
    elif section.level == 4:
        job.add("purify", _purify(n, d + 1))
    else:
        job.add("calibrate", Cost(1, 32 + MESSAGE_BYTES, RATES["round"]))  # a public seed
    job.add("train", _sgd(n, d, section.hyper))
    job.add("release", mul(d))


def _purify(n: int, columns: int) -> Cost:
    """ml/purify.purify: shuffle, compact M = 2^ceil(log2 N) rows, the duplication network's
    levels (each a product and a row-broadcast multiplexer), compact again, the half copy."""
    if n < 2:
        return NOTHING
    levels = (n - 1).bit_length()
    size = 1 << levels
    cost = shuffle(n, columns + 1) + sort(size, [1], columns + 1) + less_than(levels)
    for i in range(1, levels + 1):
        rows = size - (size >> i)
        cost += mul(rows) + flag_rows(rows, columns + 1)
    cost += sort(size, [1], columns + 1) + flag_rows(size // 2, columns + 1)
    return cost + shuffle(n, columns)


def _sgd(n: int, d: int, hyper) -> Cost:
    """ml/sgd.train: X - A opened once (and, for logistic, the residual bounds: a comparison,
    bits_times and a product of 2N values), then per iteration (9 rounds) the batch's masked
    products, two truncations and the clamped residual."""
    rows = n + 1  # and the dummy row
    cost = reveal(rows * d)
    if hyper.model == "logistic":
        cost += msb(2 * rows) + bits_times(2 * rows) + mul(2 * rows)
    batch = hyper.batch_size
    step = (reveal(d) + truncate(batch) + msb(2 * batch) + bits_times(2 * batch)
            + reveal(batch) + truncate(d))
    return cost + Cost(step.rounds * hyper.iterations, step.bytes * hyper.iterations,
                       step.seconds * hyper.iterations)


def _predict(job: _Job, section: PredictSection) -> None:
    """servers/execute._predict: scale, the product with the weights and its truncation, the
    sigmoid (logistic) or the label's scale (linear), then the rows' release or the metrics
    (ml/metrics.py)."""
    n, d = job.n, len(section.features) + 1
    if section.noise is not None:
        _tau(job, d)
    logistic = job.model == "logistic"
    cost = truncate(n * d) + _op(n, 1, 8 * (d + 1), RATES["mul"]) + truncate(n)
    clamp = msb(2 * n) + bits_times(2 * n)
    if section.label is None:
        cost += truncate(n) + clamp if logistic else truncate(n)
        job.add("entities", _entities(job))
        job.add("predict", cost + (mul(1) if job.entities else NOTHING) + mul(n))
        job.add("release", flag_rows(n, 1 + len(section.carry))
                + shuffle(n, 2 + len(section.carry)))
        return
    if logistic:  # the class said and the class true, their product, three sums
        cost += truncate(n) + clamp + less_than(2 * n) + mul(n) + flag_rows(n, 3)
    else:  # the clamped prediction in the label's units, |error|, two squares, the sums
        cost += clamp + truncate(n) + less_than(n) + mul(n) + fixed_mul(2 * n)
        cost += (less_than(2 * n) if section.classes else NOTHING) + flag_rows(
            n, 4 + section.classes)
    for table, key in job.entities.items():
        if table != job.spec.plan.root:
            cost += first_occurrences(n, [job.key_bits(key)])
    job.add("predict", cost)
    release = mul(6)  # the count and at most five sums
    if job.entities:
        release += less_than(len(job.entities)) + product(1, len(job.entities)) + mul(1)
    job.add("release", release)
