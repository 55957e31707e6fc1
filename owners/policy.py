"""Owners' analysis rules: what an owner allows jobs to do with its table, default deny.

In the spirit of AWS Clean Rooms' analysis rules, an owner declares at upload (flags, or a TOML
policy file) and every version of its table carries:
- recipients: who may receive any output derived from the table (default: the owner alone;
  "*" admits every registered client);
- outputs: the kinds of output allowed, among rows, aggregate, statistics, model and
  predictions (default: aggregate, statistics and model; raw rows only when the owner says so);
- row_columns: which of its columns may appear in row outputs (default: all, once rows are
  allowed);
- min_group_size k: groups (and statistics) with fewer than k different entities of this table
  are suppressed on shares before release;
- min_join_size: a floor on the join-size check of levels 4 and 5 that submitters cannot lower;
- min_privacy_level and max_epsilon: the least privacy level of jobs, and the largest epsilon
  (which makes differential privacy mandatory);
- budget_epsilon and budget_delta: the total that differentially private jobs may spend on the
  table over its lifetime (servers/budget.py), none by default.
The policy travels with each upload, as canonical JSON, and is part of what both servers
compare before a version becomes usable; servers/rules.py checks jobs against it.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ml.dp import Privacy, PrivacyError

OUTPUT_KINDS = ("rows", "aggregate", "statistics", "model", "predictions")
DEFAULT_OUTPUTS = ("aggregate", "statistics", "model")
ANYONE = "*"


class PolicyError(ValueError):
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


@dataclass(frozen=True, kw_only=True)
class Policy:
    recipients: tuple[str, ...]
    outputs: tuple[str, ...] = DEFAULT_OUTPUTS
    row_columns: tuple[str, ...] | None = None  # None: every column, when rows are allowed
    min_group_size: int | None = None  # k; None: no minimum
    min_join_size: int = 1
    min_privacy_level: int = 3
    max_epsilon: float | None = None
    budget: Privacy | None = None  # total (epsilon, delta) of all DP jobs on the table

    def __post_init__(self):
        object.__setattr__(self, "recipients", _names("recipients", self.recipients))
        object.__setattr__(self, "outputs", _names("outputs", self.outputs))
        if not self.recipients:
            raise PolicyError("recipients must name at least one client (or \"*\")")
        unknown = [kind for kind in self.outputs if kind not in OUTPUT_KINDS]
        if unknown:
            raise PolicyError(f"outputs: {unknown[0]!r} is not one of {', '.join(OUTPUT_KINDS)}")
        if self.row_columns is not None:
            object.__setattr__(self, "row_columns", _names("row_columns", self.row_columns))
        if self.min_group_size is not None:
            _positive_int("min_group_size", self.min_group_size, 2)
        _positive_int("min_join_size", self.min_join_size, 1)
        if self.min_privacy_level not in (3, 4, 5) or isinstance(self.min_privacy_level, bool):
            raise PolicyError("min_privacy_level must be 3, 4 or 5")
        if self.max_epsilon is not None:
            try:
                Privacy(epsilon=self.max_epsilon, delta=0.5)
            except PrivacyError as error:
                raise PolicyError(f"max_epsilon: {error}") from None

    def check_columns(self, table) -> None:
        """Row columns must be columns of the table (an owners.schema.Table)."""
        for column in self.row_columns or ():
            if column not in table.column_names:
                raise PolicyError(f"row_columns: {column!r} is not a column of table "
                                  f"{table.name}")

    def allows_rows_of(self, column: str) -> bool:
        return "rows" in self.outputs and (self.row_columns is None
                                           or column in self.row_columns)

    def to_json(self) -> str:
        raw = asdict(self)
        raw["budget"] = self.budget.as_dict() if self.budget else None
        return json.dumps(raw, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Policy":
        """A policy sent by an owner; anything malformed is a PolicyError."""
        try:
            raw = json.loads(text)
        except (TypeError, ValueError):
            raise PolicyError("the policy is not valid JSON") from None
        return cls.from_mapping(raw, "the policy")

    @classmethod
    def from_mapping(cls, raw, where: str) -> "Policy":
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
                values["budget"] = Privacy(epsilon=budget.get("epsilon"),
                                           delta=budget.get("delta"))
            except PrivacyError as error:
                raise PolicyError(f"{where}: budget {error}") from None
        try:
            return cls(**values)
        except TypeError as error:  # a missing recipients
            raise PolicyError(f"{where}: {error}") from None
        except PolicyError as error:
            raise PolicyError(f"{where}: {error}") from None


FILE_KEYS = ("recipients", "outputs", "row_columns", "min_group_size", "min_join_size",
             "min_privacy_level", "max_epsilon", "budget_epsilon", "budget_delta")


def policy_from_settings(settings: dict, *, table, where: str) -> Policy:
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
        policy.check_columns(table)
    except PolicyError as error:
        raise PolicyError(f"{where}: {error}") from None
    return policy


def load_policy_file(path: Path) -> dict:
    """The settings of a policy file: its top-level keys, or those of a [policy] table."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise PolicyError(f"{path}: {error}") from None
    if set(raw) == {"policy"} and isinstance(raw["policy"], dict):
        raw = raw["policy"]
    return raw
