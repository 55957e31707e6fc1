"""Checking a job against the analysis rules of every table it reads (owners/policy.py).

The job's exposure (servers/exposure.py) meets each table's policy: who submits and who
receives, the kind of output, the privacy level, differential privacy and its unit, and the
role of every column the job touches. A job must satisfy every table's policy; the most
restrictive rule wins. An owner's rules do not bind the owner's own jobs for itself (submitted
by the owner, for the owner alone). Both servers check the policies of the exact versions a
job reads: at submission, and again when it starts (a newer version may have arrived in
between). `review` lists every finding, allowed or not, for `twofold job explain`.
"""

from __future__ import annotations

from dataclasses import dataclass

from twofold.mpc.privacy import Privacy
from twofold.owners.policy import ROLE_LISTS, Policy, PolicyError
from twofold.owners.schema import Schema
from twofold.servers.exposure import Exposure, Use


@dataclass(frozen=True)
class Rules:
    """What the policies of a job's tables leave it, once the job is allowed."""

    min_group_sizes: dict[str, int]  # table -> k, for tables with k >= 2
    min_join_size: int  # the largest floor (levels 4 and 5)
    budgets: dict[str, Privacy | None]  # table charged -> its total budget (None: no limit)


@dataclass(frozen=True)
class Finding:
    """One rule of one table applied to the job: allowed or not, and why, in one line."""

    table: str
    rule: str  # the policy key, or the column and its role
    allowed: bool
    why: str


def _own_job(exposure: Exposure, owner: str, submitter: str) -> bool:
    return {submitter, *exposure.recipients} == {owner}


def _table_findings(exposure: Exposure, schema: Schema, table: str, policy: Policy,
                    submitter: str) -> list[Finding]:
    def finding(rule: str, allowed: bool, why: str) -> Finding:
        return Finding(table, rule, allowed, f"table {table}: {why}")

    submits = submitter == schema.table(table).owner or policy.may_submit(submitter)
    found = [finding("analysts", submits, f"its owner {'lets' if submits else 'does not let'} "
                                          f"{submitter} submit jobs that read it"
                                          + ("" if submits else
                                             f" (the owner would add {submitter} to analysts)"))]
    outsiders = sorted(name for name in exposure.recipients if not policy.may_receive(name))
    found.append(finding("recipients", not outsiders,
                         f"its owner does not allow outputs to {', '.join(outsiders)} (the "
                         f"owner would add {', '.join(outsiders)} to recipients)"
                         if outsiders else "its owner allows outputs to "
                         f"{', '.join(exposure.recipients)}"))
    kinds = [exposure.output] + (["rows"] if exposure.output != "rows" and any(
        use.role == "row output" for use in exposure.uses_of(table)) else [])
    for kind in kinds:
        allowed = kind in policy.outputs
        found.append(finding("outputs", allowed,
                             f"its owner {'allows' if allowed else 'does not allow'} {kind} "
                             f"outputs (allowed: {', '.join(policy.outputs) or 'none'}"
                             + (")" if allowed else f"; the owner would add {kind} to outputs)")))
    level_ok = exposure.level >= policy.min_privacy_level
    found.append(finding("min_privacy_level", level_ok,
                         f"its owner requires privacy level {policy.min_privacy_level} or more; "
                         f"this job has level {exposure.level}"
                         + ("" if level_ok else " (noise makes a job level 5; a training "
                                                "declares its privacy_level)")))
    found += _privacy_findings(exposure, schema, table, policy, finding)
    found += [_column_finding(schema, use, policy, finding) for use in exposure.uses_of(table)]
    if policy.min_group_size > 1:
        found.append(finding("min_group_size", True,
                             f"every release needs {policy.min_group_size} of its entities, "
                             f"counted over {exposure.scope}"))
    return found


def _privacy_findings(exposure: Exposure, schema: Schema, table: str, policy: Policy,
                      finding) -> list[Finding]:
    """The table's DP rules: a differentially private job protects the table only if it
    bounds contributions per the table's privacy unit; max_epsilon binds the whole charge."""
    unit = policy.unit(schema, table)
    found = []
    if exposure.privacy is not None and (policy.budget is not None
                                         or policy.max_epsilon is not None):
        protects = exposure.unit == unit
        found.append(finding("privacy_unit", protects,
                             f"its owner's privacy rules protect entities of {unit}; this job "
                             f"bounds contributions per {exposure.unit} entity"
                             + ("" if protects else f" (give the job unit = \"{unit}\")")))
    if policy.max_epsilon is not None:
        charge = exposure.charge
        allowed = charge is not None and charge.epsilon <= policy.max_epsilon
        spent = f"this job's charge is epsilon {charge.epsilon:g}" if charge else \
            "this job is not differentially private"
        found.append(finding("max_epsilon", allowed,
                             f"its owner allows only differentially private jobs with epsilon "
                             f"<= {policy.max_epsilon:g}; {spent}"))
    return found


def _column_finding(schema: Schema, use: Use, policy: Policy, finding) -> Finding:
    granted = policy.grants(schema.table(use.table), use.column, use.role, use.function)
    rule = f"{use.column}: {use.describe()}"
    if granted:
        return finding(rule, True, f"column {use.column} may be used as {use.describe()}")
    grant = ROLE_LISTS[use.role]
    how = (f"{grant} = {{ {use.column} = [\"{use.function}\"] }}" if use.role == "aggregate"
           else f"{use.column} in {grant}")
    return finding(rule, False, f"its owner does not grant column {use.column} the role "
                                f"{use.describe()} (the owner would add {how})")


def review(exposure: Exposure, schema: Schema, policies: dict[str, Policy],
           submitter: str) -> list[Finding]:
    """Every rule of every table the job reads, applied: allowed or not, and why."""
    found = []
    for table in exposure.tables:
        policy = policies[table]
        if _own_job(exposure, schema.table(table).owner, submitter):
            found.append(Finding(table, "owner", True, f"table {table}: its owner's own job "
                                                       "for itself; its rules do not bind it"))
            continue
        found += _table_findings(exposure, schema, table, policy, submitter)
    return found


def check_job(exposure: Exposure, schema: Schema, policies: dict[str, Policy],
              submitter: str) -> Rules:
    """Refuse the job if it breaks any table's policy (PolicyError naming the first rule it
    breaks); otherwise the combined rules its run must apply."""
    refused = [f for f in review(exposure, schema, policies, submitter)
               if not f.allowed]
    if refused:
        raise PolicyError(refused[0].why)
    bound = {table: policy for table, policy in policies.items()
             if not _own_job(exposure, schema.table(table).owner, submitter)}
    charged = {table: policy.budget for table, policy in bound.items()
               if exposure.privacy is not None
               and exposure.unit == policy.unit(schema, table)}
    return Rules({table: p.min_group_size for table, p in bound.items() if p.min_group_size > 1},
                 max((p.min_join_size for p in bound.values()), default=1), charged)
