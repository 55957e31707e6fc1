"""Declared ranges enforced on shares, before anything relies on them.

Every range and domain check of an upload runs in the owner's client (owners/read.py); the
servers see only shares, so an owner with a modified client can upload any word at all. Yet
other owners' guarantees rest on the declared ranges: a noisy sum's noise is calibrated to
max(|min|, |max|) per row, a level-5 gradient stays within its DP clip only if every feature
scales into the unit ball, and the overflow arguments of sums, scaling and truncation assume
the declared bounds. One value 100 times its declared maximum on another owner's rows would
break them: it would show which group that person is in, or push their gradient past the
clip. So before the join, a job clamps every column it reads to its declared domain, on
shares, with a clamp that is right for any word (clamp_public): numbers to the fixed-point
codes of [min, max], categorical codes to the vocabulary's indices, null flags and the
indicator to [0, 1]. A nullable column's missing cell (flag 1) holds 0 again afterwards, as
an honest client stores it, so an imputed value stays in its range too. Honest values pass
unchanged.

Keys are left alone: the join only compares them, and their domains are checked at upload.
"""

from __future__ import annotations

import numpy as np

from mpc.party import Party
from mpc.protocols.boolean import clamp_public, flag_rows
from owners.schema import INDICATOR, NULL_PREFIX, Schema, Table, null_flag

U64 = np.uint64


def declared_bounds(schema: Schema, table: Table, name: str) -> tuple[int, int] | None:
    """The ring codes [low, high] (signed) an honest client stores in a stored column, or None
    for a key (a key column, or the combined code of a composite key)."""
    if name == INDICATOR or name.startswith(NULL_PREFIX):
        return 0, 1
    if name not in table.column_names or table.column(name).type == "key":
        return None
    column = table.column(name)
    if column.type == "categorical":
        return 0, len(column.values) - 1
    low, high = schema.fixed.encode([column.min, column.max]).view(np.int64).tolist()
    return low, high


def _nullable(table: Table, columns: list[str]) -> list[str]:
    return [c for c in columns if c in table.column_names and table.column(c).nullable]


def _read_columns(table: Table, wanted: list[str]) -> list[str]:
    """The stored columns a job reads, the indicator, and the null flag of every nullable
    column among them (to restore its missing cells)."""
    flags = [null_flag(c) for c in _nullable(table, wanted)]
    return list(dict.fromkeys([*wanted, *flags, INDICATOR]))


def _split(flat: np.ndarray, parts: list[np.ndarray]) -> list[np.ndarray]:
    """flat cut into pieces of the parts' lengths."""
    return np.split(flat, np.cumsum([len(part) for part in parts])[:-1])


async def clamp_to_declared(party: Party, schema: Schema,
                            tables: dict[str, dict[str, np.ndarray]],
                            wanted: dict[str, list[str]]) -> dict[str, dict[str, np.ndarray]]:
    """The tables with the columns a job reads (`wanted`, per table), their indicators and
    their null flags clamped to their declared domains, every other column as it was. One
    clamp_public for all of them (its rounds, 3 msbs and 16.75 bytes per value), and one round
    more (8 bytes per value) for the missing cells of the nullable columns read."""
    tables = {name: dict(columns) for name, columns in tables.items()}
    bounded = [(name, column, bounds) for name, columns in wanted.items()
               for column in _read_columns(schema.table(name), columns)
               if (bounds := declared_bounds(schema, schema.table(name), column)) is not None]
    parts = [tables[name][column] for name, column, _ in bounded]
    lows, highs = zip(*(bounds for *_, bounds in bounded))
    sizes = [len(part) for part in parts]
    flat = await clamp_public(party, np.concatenate(parts), np.repeat(lows, sizes),
                              np.repeat(highs, sizes))
    for (name, column, _), values in zip(bounded, _split(flat, parts)):
        tables[name][column] = values
    nullable = [(name, column) for name, columns in wanted.items()
                for column in _nullable(schema.table(name), columns)]
    if nullable:
        await _restore_missing_cells(party, tables, nullable)
    return tables


async def _restore_missing_cells(party: Party, tables: dict[str, dict[str, np.ndarray]],
                                 nullable: list[tuple[str, str]]) -> None:
    """value * (1 - flag), in place, for each (table, column), its flag now 0/1: a missing
    cell holds 0 again even where 0 is outside the column's range (the clamp moved it into the
    range), and a flag set beside a value cannot make an imputation add to it. One round."""
    parts = [tables[name][column] for name, column in nullable]
    present = np.concatenate([party.public(np.ones(len(tables[name][column]), U64))
                              - tables[name][null_flag(column)] for name, column in nullable])
    (kept,) = await flag_rows(party, present, np.concatenate(parts)[None, :])
    for (name, column), values in zip(nullable, _split(kept, parts)):
        tables[name][column] = values
