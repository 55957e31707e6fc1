"""Owners' analysis rules: what an owner lets jobs read from its table, and release, default deny.

In the vocabulary of AWS Clean Rooms' analysis rules, an owner declares at upload (flags, or a
TOML policy file) and every version of its table carries:
- recipients: who may receive any output derived from the table (default: the owner alone;
  "*" admits every registered client); analysts: who may submit jobs that read it, besides
  the owner (default: the recipients);
- outputs: the kinds of output allowed, among rows, aggregate, statistics, model and
  predictions (default: aggregate, statistics and model; raw rows only when the owner says so);
- column roles, for every column a job touches: join_columns (only in join conditions; the
  table's keys by default), dimension_columns (filtered, grouped, or output in rows),
  aggregate_columns with the functions allowed on each (count_distinct, sum, mean, variance,
  min, max, histogram), model_columns (features, labels, prediction inputs); "*" names every
  column. Nothing but the keys' join role is granted by default;
- min_group_size k (default 2): every released group, statistic, model, row set and metric
  depends on at least k different entities of this table, or it is suppressed on shares;
  1 turns the rule off;
- min_join_size: a floor on the join-size check of levels 4 and 5 that submitters cannot lower;
- min_privacy_level (default 4: a level-3 training, which opens |J|, needs the owner's 3) and
  max_epsilon (every job must be differentially private, charged at most this epsilon);
- budget_epsilon and budget_delta: the total that differentially private jobs may spend on the
  table over its lifetime (servers/budget.py), none by default; privacy_unit: the table whose
  entities that budget protects (the table itself, or one its rows describe: a table it reaches
  by foreign keys; default: the schema's primary_private table when the rows describe it).
The rules bind everyone but the owner itself: a job that the owner submits for the owner alone
reads its own table freely. The policy travels with each upload, as canonical JSON, and is part
of what both servers compare before a version becomes usable; servers/rules.py checks jobs
against it, through the one exposure analysis of servers/exposure.py.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import cast

from twofold.mpc.errors import TwofoldError
from twofold.mpc.privacy import Privacy, PrivacyError

OUTPUT_KINDS = ("rows", "aggregate", "statistics", "model", "predictions")
DEFAULT_OUTPUTS = ("aggregate", "statistics", "model")
AGGREGATE_FUNCTIONS = ("count_distinct", "sum", "mean", "variance", "min", "max", "histogram")
# given the count, which every aggregate releases, a sum and a mean tell each other
SAME_INFORMATION = {"sum": "mean", "mean": "sum"}
ANYONE = "*"
ALL_COLUMNS = "*"
ROLE_LISTS = {"join": "join_columns", "filter": "dimension_columns",
              "group": "dimension_columns", "row output": "dimension_columns",
              "aggregate": "aggregate_columns", "feature": "model_columns",
              "label": "model_columns", "predict input": "model_columns"}


class PolicyError(TwofoldError, ValueError):
    """A policy that cannot be used, or a job that breaks one; the message names the table
    (or the file) and the rule."""


def _positive_int(key: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise PolicyError(f"{key} must be an integer of at least {low}, got {value!r}")
    return value


def _names(key: str, value) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(f"{key} must be a list of names, got {value!r}")
    return tuple(dict.fromkeys(value))


def _functions(column: str, value) -> tuple[str, ...]:
    """An aggregate column's functions, closed under SAME_INFORMATION, in canonical order."""
    names = set(_names(f"aggregate_columns.{column}", value))
    unknown = sorted(names - set(AGGREGATE_FUNCTIONS))
    if unknown:
        raise PolicyError(f"aggregate_columns.{column}: {unknown[0]!r} is not one of "
                          f"{', '.join(AGGREGATE_FUNCTIONS)}")
    names |= {SAME_INFORMATION[name] for name in names if name in SAME_INFORMATION}
    return tuple(f for f in AGGREGATE_FUNCTIONS if f in names)


def _aggregate_columns(value) -> dict[str, tuple[str, ...]]:
    """{column: functions}; a list of columns (or "*") grants every function."""
    if isinstance(value, (str, list, tuple)):
        return {column: AGGREGATE_FUNCTIONS for column in _names("aggregate_columns", value)}
    if not isinstance(value, dict):
        raise PolicyError("aggregate_columns must map columns to lists of functions")
    return {str(column): _functions(column, functions)
            for column, functions in sorted(value.items())}


@dataclass(frozen=True, kw_only=True)
class Policy:
    recipients: tuple[str, ...]
    analysts: tuple[str, ...] | None = None  # None: the recipients
    outputs: tuple[str, ...] = DEFAULT_OUTPUTS
    join_columns: tuple[str, ...] | None = None  # None: the table's key columns
    dimension_columns: tuple[str, ...] = ()
    aggregate_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)  # by column
    model_columns: tuple[str, ...] = ()
    min_group_size: int = 2  # k; 1: no minimum
    min_join_size: int = 1
    min_privacy_level: int = 4
    max_epsilon: float | None = None
    budget: Privacy | None = None  # total (epsilon, delta) of all DP jobs on the table
    privacy_unit: str | None = None  # the table whose entities the budget protects

    def _set(self, name: str, value) -> None:  # normalising a frozen dataclass's fields
        object.__setattr__(self, name, value)

    def __post_init__(self):
        self._set("recipients", _names("recipients", self.recipients))
        if not self.recipients:
            raise PolicyError("recipients must name at least one client (or \"*\")")
        if self.analysts is not None:
            self._set("analysts", _names("analysts", self.analysts))
        self._set("outputs", _names("outputs", self.outputs))
        unknown = [kind for kind in self.outputs if kind not in OUTPUT_KINDS]
        if unknown:
            raise PolicyError(f"outputs: {unknown[0]!r} is not one of {', '.join(OUTPUT_KINDS)}")
        for key in ("join_columns", "dimension_columns", "model_columns"):
            if getattr(self, key) is not None:
                self._set(key, _names(key, getattr(self, key)))
        self._set("aggregate_columns", _aggregate_columns(self.aggregate_columns or {}))
        _positive_int("min_group_size", self.min_group_size, 1)
        _positive_int("min_join_size", self.min_join_size, 1)
        if self.min_privacy_level not in (3, 4, 5) or isinstance(self.min_privacy_level, bool):
            raise PolicyError("min_privacy_level must be 3, 4 or 5")
        if self.max_epsilon is not None:
            try:
                Privacy(epsilon=self.max_epsilon, delta=0.5)
            except PrivacyError as error:
                raise PolicyError(f"max_epsilon: {error}") from None
        if self.privacy_unit is not None and not isinstance(self.privacy_unit, str):
            raise PolicyError(f"privacy_unit must be a table name, got {self.privacy_unit!r}")

    def check_against(self, schema, table) -> None:
        """Every named column is a column of the table (an owners.schema.Table), join columns
        are keys, and the privacy unit is a table the rows describe."""
        names = set(table.column_names)
        keys = {c.name for c in table.columns if c.type == "key"}
        for key in ("join_columns", "dimension_columns", "model_columns", "aggregate_columns"):
            for column in getattr(self, key) or ():
                if column != ALL_COLUMNS and column not in names:
                    raise PolicyError(f"{key}: {column!r} is not a column of table "
                                      f"{table.name}")
                if key == "join_columns" and column != ALL_COLUMNS and column not in keys:
                    raise PolicyError(f"join_columns: {column!r} is not a key of table "
                                      f"{table.name}")
        described = schema.described_by(table.name)
        if self.privacy_unit is not None and self.privacy_unit not in described:
            raise PolicyError(f"privacy_unit: a row of {table.name} describes an entity of "
                              f"{' or '.join(sorted(described))}, not of {self.privacy_unit!r}")

    def unit(self, schema, table: str) -> str:
        """The table whose entities this table's budget and DP rules protect."""
        if self.privacy_unit is not None:
            return self.privacy_unit
        private = schema.primary_private
        return private if private in schema.described_by(table) else table

    def may_submit(self, client: str) -> bool:
        analysts = self.recipients if self.analysts is None else self.analysts
        return ANYONE in analysts or client in analysts

    def may_receive(self, client: str) -> bool:
        return ANYONE in self.recipients or client in self.recipients

    def grants(self, table, column: str, role: str, function: str | None = None) -> bool:
        """Whether the owner lets a job use this column of the table (an owners.schema.Table)
        in this role (ROLE_LISTS), with this aggregate function."""
        if role == "aggregate":
            granted = self.aggregate_columns
            return function in (*granted.get(column, ()), *granted.get(ALL_COLUMNS, ()))
        granted = getattr(self, ROLE_LISTS[role])
        if granted is None:  # join columns by default: the keys
            return table.column(column).type == "key"
        return ALL_COLUMNS in granted or column in granted

    def to_json(self) -> str:
        raw = asdict(self)
        raw["budget"] = self.budget.as_dict() if self.budget else None
        raw["aggregate_columns"] = {c: list(f) for c, f in self.aggregate_columns.items()}
        return json.dumps(raw, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Policy:
        """A policy sent by an owner; anything malformed is a PolicyError."""
        try:
            raw = json.loads(text)
        except (TypeError, ValueError):
            raise PolicyError("the policy is not valid JSON") from None
        return cls.from_mapping(raw, "the policy")

    @classmethod
    def from_mapping(cls, raw, where: str) -> Policy:
        """From a mapping of the dataclass's fields (budget as {epsilon, delta}); errors name
        `where` and the key."""
        if not isinstance(raw, dict):
            raise PolicyError(f"{where} must be a table of rules")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise PolicyError(f"{where}: unknown key {unknown[0]!r} (known: "
                              f"{', '.join(sorted(known))})")
        values = dict(raw)
        budget = values.get("budget")
        if budget is not None:
            if not isinstance(budget, dict) or set(budget) - {"epsilon", "delta", "tau"}:
                raise PolicyError(f"{where}: budget must be {{ epsilon = ..., delta = ... }}")
            try:
                # unchecked values, as read: Privacy refuses any but numbers in range
                values["budget"] = Privacy(epsilon=cast(float, budget.get("epsilon")),
                                           delta=cast(float, budget.get("delta")))
            except PrivacyError as error:
                raise PolicyError(f"{where}: budget {error}") from None
        try:
            return cls(**values)
        except TypeError as error:  # a missing recipients
            raise PolicyError(f"{where}: {error}") from None
        except PolicyError as error:
            raise PolicyError(f"{where}: {error}") from None


def unrestricted(recipients: tuple[str, ...] = (ANYONE,)) -> Policy:
    """Rules that bind nothing but the recipients (synthetic data in benchmarks, tests of
    results): every kind of output, every column in every role, no minimum group size, any
    privacy level."""
    return Policy(recipients=recipients, outputs=OUTPUT_KINDS,
                  dimension_columns=(ALL_COLUMNS,),
                  aggregate_columns={ALL_COLUMNS: AGGREGATE_FUNCTIONS},
                  model_columns=(ALL_COLUMNS,), min_group_size=1, min_privacy_level=3)


FILE_KEYS = ("recipients", "analysts", "outputs", "join_columns", "dimension_columns",
             "aggregate_columns", "model_columns", "min_group_size", "min_join_size",
             "min_privacy_level", "max_epsilon", "budget_epsilon", "budget_delta",
             "privacy_unit")


def policy_from_settings(settings: dict, *, schema, table, where: str) -> Policy:
    """A table's (an owners.schema.Table's) policy from flat settings: a policy file's keys
    or the upload flags. Absent keys take the defaults, recipients the table's owner alone."""
    unknown = sorted(set(settings) - set(FILE_KEYS))
    if unknown:
        raise PolicyError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(FILE_KEYS)})")
    raw = {key: value for key, value in settings.items() if not key.startswith("budget_")}
    raw.setdefault("recipients", [table.owner])
    if "budget_epsilon" in settings or "budget_delta" in settings:
        if "budget_epsilon" not in settings or "budget_delta" not in settings:
            raise PolicyError(f"{where}: a budget needs both budget_epsilon and budget_delta")
        raw["budget"] = {"epsilon": settings["budget_epsilon"],
                         "delta": settings["budget_delta"]}
    policy = Policy.from_mapping(raw, where)
    try:
        policy.check_against(schema, table)
    except PolicyError as error:
        raise PolicyError(f"{where}: {error}") from None
    return policy


def parse_aggregate_flag(text: str) -> dict[str, list[str]]:
    """--aggregate-columns "amount:sum:mean,price": functions after colons; none: all."""
    columns = {}
    for item in _names("aggregate_columns", text):
        column, *functions = item.split(":")
        columns[column] = functions or list(AGGREGATE_FUNCTIONS)
    return columns


def load_policy_file(path: Path) -> dict:
    """The settings of a policy file: its top-level keys, or those of a [policy] table."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise PolicyError(f"{path}: {error}") from None
    if set(raw) == {"policy"} and isinstance(raw["policy"], dict):
        raw = raw["policy"]
    return raw
