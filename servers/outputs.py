"""How a server describes the columns it releases (the output format itself, shared with the
recipients, is mpc/outputs.py)."""

from __future__ import annotations

from twofold.mpc.outputs import OutputColumn
from twofold.owners.schema import INDICATOR, Schema
from twofold.sorting_join.predicate import column_type


def describe(schema: Schema, name: str) -> OutputColumn:
    """How to decode a stored column or an aggregate named after one."""
    if name == "count" or name == INDICATOR:
        return OutputColumn(name, "count")
    inner = name[name.index("(") + 1:-1] if "(" in name else name
    column = column_type(schema, inner)
    if column.numeric or name.startswith(("sum(", "sumsq(", "min(", "max(")):
        return OutputColumn(name, "fixed")
    if name.startswith("histogram("):
        return OutputColumn(name, "count", column.values)
    return OutputColumn(name, column.type, column.values)
