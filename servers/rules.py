"""Checking a job against the analysis rules of every table it reads (owners/policy.py).

A job must satisfy every table's policy; the most restrictive rule wins. Both servers check the
policies of the exact versions a job reads: at submission, and again when it starts (a newer
version may have arrived in between).
"""

from __future__ import annotations

from dataclasses import dataclass

from ml.dp import Privacy
from owners.policy import ANYONE, Policy, PolicyError


@dataclass(frozen=True)
class Rules:
    """What the policies of a job's tables leave it, once the job is allowed."""

    min_group_sizes: dict[str, int]  # table -> k, for tables with k >= 2
    min_join_size: int  # the largest floor (levels 4 and 5)
    budgets: dict[str, Privacy | None]  # table -> its total budget (None: no limit)


def check_job(spec, policies: dict[str, Policy], clients: set[str]) -> Rules:
    """Refuse the job (a servers.jobspec.JobSpec) if it breaks any table's policy; otherwise
    the combined rules its run must apply."""
    level, kind, privacy = spec.privacy_level, spec.output_kind, spec.privacy
    for table, policy in policies.items():
        allowed = clients if ANYONE in policy.recipients else set(policy.recipients)
        outsiders = sorted(set(spec.recipients) - allowed)
        if outsiders:
            raise PolicyError(f"table {table}: its owner does not allow outputs to "
                              f"{', '.join(outsiders)}")
        if kind not in policy.outputs:
            raise PolicyError(f"table {table}: its owner does not allow {kind} outputs "
                              f"(allowed: {', '.join(policy.outputs)})")
        if level < policy.min_privacy_level:
            raise PolicyError(f"table {table}: its owner requires privacy level "
                              f"{policy.min_privacy_level} or more; this job has level {level}")
        if policy.max_epsilon is not None and (privacy is None
                                               or privacy.epsilon > policy.max_epsilon):
            raise PolicyError(f"table {table}: its owner allows only differentially private "
                              f"jobs with epsilon <= {policy.max_epsilon:g}")
    for column in _row_columns(spec):
        table = column.partition(".")[0]
        if not policies[table].allows_rows_of(column.partition(".")[2]):
            raise PolicyError(f"table {table}: its owner does not allow column {column} in "
                              "row outputs")
    return Rules({table: p.min_group_size for table, p in policies.items()
                  if p.min_group_size is not None},
                 max(p.min_join_size for p in policies.values()),
                 {table: p.budget for table, p in policies.items()})


def _row_columns(spec) -> tuple[str, ...]:
    """Columns a job returns row by row: a rows output's, and those carried beside
    predictions."""
    if spec.kind == "rows":
        return spec.section.columns
    if spec.kind == "predict":
        return spec.section.carry
    return ()
