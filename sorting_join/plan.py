"""Planning an FK-acyclic join from the schema alone (section 5.3 of the seed paper).

Repeatedly take a table S that references no remaining table (a sink). Its first parent R1
(a remaining table with a foreign key to S) joins S and receives S's columns; every further
parent Ri joins only S's key, to learn whether its reference exists, and the constraint
R1.fk = Ri.fk goes into Theta, so that all paths reach the same S row. When one table is left
(the root: the fact table, or the subset's top table), Theta is checked on shares and folded
into the indicator. The plan depends only on the public schema.
"""

from __future__ import annotations

from dataclasses import dataclass

from twofold.mpc.errors import TwofoldError
from twofold.owners.keys import KEY_BITS
from twofold.owners.schema import INDICATOR, Schema, SchemaError, key_sort_bits


class PlanError(TwofoldError, ValueError):
    """A join the schema cannot express."""


@dataclass(frozen=True)
class JoinStep:
    parent: str
    parent_key: str  # qualified stored column of the parent's foreign key
    child: str
    child_key: str  # qualified stored column of the child's primary key
    carries_columns: bool  # only the first parent of a child receives its columns
    key_bits: int  # the join sorts on this many bits of the key (from the schema)


@dataclass(frozen=True)
class JoinPlan:
    root: str
    tables: tuple[str, ...]
    steps: tuple[JoinStep, ...]
    theta: tuple[tuple[str, str], ...]


def qualified(table: str, column: str) -> str:
    return f"{table}.{column}"


def plan_join(schema: Schema, tables: list[str] | None = None) -> JoinPlan:
    """The join of the given tables (default: every table of the schema)."""
    names = list(tables) if tables else list(schema.tables)
    for name in names:
        try:
            schema.table(name)
        except SchemaError as error:
            raise PlanError(str(error)) from None
    if len(set(names)) != len(names):
        raise PlanError("a table is named twice")
    edges = [(name, fk) for name in names for fk in schema.table(name).foreign_keys
             if fk.references in names]
    referenced = {fk.references for _, fk in edges}
    roots = [name for name in names if name not in referenced]
    if len(roots) != 1:
        raise PlanError(f"tables {', '.join(names)} are not joined by the schema's foreign keys "
                        f"into one tree from a single top table (tops: {', '.join(roots)})")
    reachable, frontier = {roots[0]}, [roots[0]]
    while frontier:
        current = frontier.pop()
        for name, fk in edges:
            if name == current and fk.references not in reachable:
                reachable.add(fk.references)
                frontier.append(fk.references)
    if reachable != set(names):
        missing = ", ".join(sorted(set(names) - reachable))
        raise PlanError(f"no foreign-key path from {roots[0]} reaches {missing}")
    remaining, steps, theta = list(names), [], []
    while len(remaining) > 1:
        sink = next(name for name in remaining
                    if not any(src == name and fk.references in remaining for src, fk in edges))
        child = schema.table(sink)
        child_key = qualified(sink, child.key_column(child.primary_key))
        key_bits = (key_sort_bits(child.column(child.primary_key[0]))
                    if len(child.primary_key) == 1 else KEY_BITS)  # composite keys are hashed
        parents = [(src, fk) for src, fk in edges if fk.references == sink and src in remaining]
        for index, (src, fk) in enumerate(parents):
            parent_key = qualified(src, schema.table(src).key_column(fk.columns))
            steps.append(JoinStep(src, parent_key, sink, child_key, index == 0, key_bits))
            if index:
                theta.append((steps[-1 - index].parent_key, parent_key))
        remaining.remove(sink)
    return JoinPlan(roots[0], tuple(names), tuple(steps), tuple(theta))


def stored_columns(schema: Schema, plan: JoinPlan) -> list[str]:
    """Every qualified stored column of the plan's tables, indicators excluded."""
    return [qualified(name, column) for name in plan.tables
            for column in schema.table(name).stored_columns if column != INDICATOR]


def describe_plan(plan: JoinPlan, rows: dict[str, int]) -> dict:
    """The plan as `job explain` shows it, with the tables' public row counts: each binary
    join sorts its parent's and its child's rows together (the parent keeps its rows), and
    Theta's equalities are checked once every table has joined."""
    return {"root": plan.root,
            "steps": [{"parent": step.parent, "child": step.child,
                       "on": [step.parent_key, step.child_key], "key_bits": step.key_bits,
                       "sort_rows": rows[step.parent] + rows[step.child],
                       "carries_columns": step.carries_columns} for step in plan.steps],
            "theta": [list(pair) for pair in plan.theta]}
