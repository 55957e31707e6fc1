"""What a job exposes: every column it touches, in which role, and what its result depends on.

One analysis per job, from its typed spec, read by everything that decides or says what a job
may do: the rules check at submission and at start (servers/rules.py), `twofold job explain`,
the range enforcement (servers/ranges.py) and the entity counts of the owners' minimum group
sizes (servers/execute.py); docs/release.md describes it. Roles, per column of each table (the
owners' grants for each: owners.policy.ROLE_LISTS):
- join: a key the join sorts and matches on (and the key that bounds contributions per
  entity under differential privacy);
- filter: read by the `where` clause (nulls = "drop" on a column filters on its missing cells
  too, under the column's own role);
- group: a group-by key, released beside each group;
- aggregate, with its function: count_distinct, sum, mean, variance, min, max, histogram
  (a statistics column releases sum, sum of squares and, without noise, min and max);
- feature and label: read by training (and label by a prediction's metrics);
- predict input: a prediction's features;
- row output: returned row by row (a rows job's columns, the columns beside predictions).
The result's dependence on entities is what the owners' minimum group sizes bind: `scope`
says over which rows k entities of every table are counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from twofold.ml.dp import Charge
from twofold.ml.pipeline import TrainSpec
from twofold.mpc.privacy import Privacy
from twofold.owners.schema import Schema
from twofold.servers.jobspec import (
    AggregateSection,
    JobSpec,
    PredictSection,
    RowsSection,
    StatisticsSection,
)

SCOPES = {  # output kind -> over which rows each table's k entities are counted
    "rows": "the whole row set (each row is one joined row)",
    "aggregate": "each group",
    "statistics": "the whole output, and each histogram bin (one small bin withholds its "
                  "histogram)",
    "model": "the training rows",
    "predictions": "the whole set of predictions (each is one joined row)",
}


@dataclass(frozen=True, order=True)
class Use:
    """One column of one table in one role (with its aggregate function)."""

    table: str
    column: str  # the table's own column name
    role: str
    function: str = ""

    def describe(self) -> str:
        return f"{self.role} ({self.function})" if self.function else self.role


@dataclass(frozen=True)
class Exposure:
    kind: str  # the spec's section: rows, aggregate, statistics, train, predict
    output: str  # what it releases, in owners' terms: rows, aggregate, statistics, model,
    # predictions (a prediction's metrics are statistics)
    level: int  # 3: a training that opens |J|; 4: exact results; 5: differentially private
    recipients: tuple[str, ...]
    root: str  # the join's top table: its rows are the joined rows
    tables: tuple[str, ...]
    uses: tuple[Use, ...]
    entities: dict[str, str]  # table -> qualified key that tells its entities apart in the
    # joined rows; the root's entities are the rows themselves
    privacy: Privacy | None  # the job's DP parameters, per mechanism
    charge: Charge | None  # what it spends from each protected table's budget
    unit: str | None  # DP: the table whose entities contributions are bounded per

    @property
    def scope(self) -> str:
        return SCOPES[self.output]

    def uses_of(self, table: str) -> list[Use]:
        return [use for use in self.uses if use.table == table]

    @property
    def computed_on(self) -> dict[str, list[str]]:
        """Per table, the columns the job computes with, whose declared ranges its noise,
        clipping and overflow arguments rely on: those it aggregates (histograms count codes,
        whatever they are) or models."""
        columns: dict[str, set[str]] = {}
        for use in self.uses:
            if use.role in ("feature", "label", "predict input") or (
                    use.role == "aggregate" and use.function != "histogram"):
                columns.setdefault(use.table, set()).add(use.column)
        return {table: sorted(names) for table, names in columns.items()}

    def as_dict(self) -> dict:
        """For `twofold job explain`: per table, how its entities are told apart and every
        column use."""
        return {"kind": self.kind, "output": self.output, "level": self.level,
                "recipients": list(self.recipients), "scope": self.scope, "unit": self.unit,
                "privacy": self.privacy.as_dict() if self.privacy else None,
                "charge": self.charge.as_dict() if self.charge else None,
                "tables": {table: {"entities": "its rows" if table == self.root
                                   else self.entities.get(table, ""),
                                   "uses": [{"column": u.column, "role": u.role,
                                             "function": u.function}
                                            for u in self.uses_of(table)]}
                           for table in self.tables}}


def own_columns(schema: Schema, qualified: str) -> list[tuple[str, str]]:
    """(table, column) pairs a qualified stored column holds: a composite key's stored
    column ("_key_a_b") holds its parts."""
    table, _, column = qualified.partition(".")
    for parts in schema.table(table).composite_keys:
        if schema.table(table).key_column(parts) == column:
            return [(table, part) for part in parts]
    return [(table, column)]


def analyze(spec: JobSpec, schema: Schema) -> Exposure:
    """The job's exposure, from its parsed spec and the schema alone (both servers agree)."""
    uses: set[Use] = set()

    def use(columns, role: str, function: str = "") -> None:
        for qualified in columns:
            uses.update(Use(table, column, role, function)
                        for table, column in own_columns(schema, qualified))

    for step in spec.plan.steps:
        use([step.parent_key, step.child_key], "join")
    if spec.private_key:
        use([spec.private_key], "join")
    if spec.where is not None:
        use(spec.where.columns, "filter")
    match spec.section:
        case RowsSection() as section:
            use(section.columns, "row output")
        case AggregateSection() as section:
            use(section.group_by, "group")
            for aggregate in section.aggregates:
                if aggregate.column is None:
                    continue  # count(*) reads no column
                # a mean is released as its sum (the recipient divides): the same information
                mean = aggregate.op == "sum" and aggregate.column in section.means
                use([aggregate.column], "aggregate", "mean" if mean else aggregate.op)
        case StatisticsSection() as section:
            functions = ("sum", "variance") + (("min", "max") if section.noise is None else ())
            for function in functions:
                use(section.columns, "aggregate", function)
            use(section.histograms, "aggregate", "histogram")
        case TrainSpec():
            *features, label = spec.derived
            for feature in features:
                use(feature.columns, "feature")
            use(label.columns, "label")
        case PredictSection() as section:
            for feature in spec.derived[:len(section.features)]:
                use(feature.columns, "predict input")
            for label in spec.derived[len(section.features):]:
                use(label.columns, "label")
            use(section.carry, "row output")
    entities = {step.child: step.child_key for step in spec.plan.steps if step.carries_columns}
    unit = spec.private_key.partition(".")[0] if spec.private_key else None
    return Exposure(spec.kind, spec.output_kind, spec.privacy_level, spec.recipients,
                    spec.plan.root, spec.plan.tables, tuple(sorted(uses)), entities,
                    spec.privacy, spec.charge, unit)

