"""Declared ranges enforced on shares, before anything relies on them.

An owner's client checks its file (owners/read.py), but a modified client can upload any word
at all. The servers check every new version on shares before it becomes live
(servers/upload_checks.py); versions made live before that check existed were not, and jobs
keep their own guarantees whatever they read, since other owners' guarantees rest on what was
declared:
- the owners' minimum group sizes count entities through the indicators and null flags (a
  row whose indicator is 5 would count as five customers), so every job first makes each
  indicator and null flag it reads a bit, [word == 1] (one equality per value);
- a noisy sum's noise is calibrated to max(|min|, |max|) per row, a level-5 gradient stays
  within its DP clip only if every feature scales into the unit ball, and the overflow
  arguments of sums, squares, scaling and truncation assume the declared bounds: one value
  100 times its declared maximum on another owner's rows would show which group that person
  is in, or push their gradient past the clip. So every column a job aggregates or models
  (servers/exposure.py: aggregate, feature, label and predict input roles) is clamped to its
  declared domain with a clamp that is right for any word (clamp_public): numbers to the
  fixed-point codes of [min, max], categorical codes to the vocabulary's indices. A nullable
  column's missing cell (flag 1) holds 0 again afterwards, as an honest client stores it.
Honest values pass unchanged. Columns a job only joins on, filters, groups or returns in rows
are left alone: out of range, they change only what their own owner's values say, and keys'
domains are checked at upload.
"""

from __future__ import annotations

from typing import cast

import numpy as np

from twofold.mpc.party import Party
from twofold.mpc.protocols.boolean import clamp_public, equal, flag_rows
from twofold.mpc.ring import U64
from twofold.mpc.shares import Additive
from twofold.owners.schema import INDICATOR, NULL_PREFIX, Schema, Table, null_flag


def declared_bounds(schema: Schema, table: Table, name: str) -> tuple[int, int]:
    """The ring codes [low, high] (signed) an honest client stores in a numeric or categorical
    column."""
    column = table.column(name)
    if column.type == "categorical":
        return 0, len(column.values) - 1
    low, high = schema.fixed.encode([column.min, column.max]).view(np.int64).tolist()
    return low, high


def _split(flat: Additive, parts: list[Additive]) -> list[Additive]:
    """flat cut into pieces of the parts' lengths."""
    return cast(list[Additive], np.split(flat, np.cumsum([len(part) for part in parts])[:-1]))


async def enforce_declared(party: Party, schema: Schema,
                           tables: dict[str, dict[str, Additive]], wanted: dict[str, list[str]],
                           bounded: dict[str, list[str]]) -> dict[str, dict[str, Additive]]:
    """The tables with their indicators and the null flags among the columns a job reads
    (`wanted`, per table) made bits, and the `bounded` columns clamped to their declared
    domains; every other column as it was. One equality for the bits (its rounds, 8 to 16
    bytes per value with a dealer), one clamp_public for the bounded columns (its rounds, 3
    msbs and about 64 bytes per value), one round more for the missing cells of the nullable
    bounded columns."""
    tables = {name: dict(columns) for name, columns in tables.items()}
    flags = [(name, column) for name, columns in wanted.items() for column in columns
             if column == INDICATOR or column.startswith(NULL_PREFIX)]
    flags += [(name, INDICATOR) for name in wanted if INDICATOR not in wanted[name]]
    parts = [tables[name][column] for name, column in flags]
    flat = Additive(np.concatenate(parts))
    bits = await equal(party, flat, party.public(np.ones(len(flat), U64)))
    for (name, column), values in zip(flags, _split(bits, parts), strict=True):
        tables[name][column] = values
    clamped = [(name, column) for name, columns in bounded.items() for column in columns
               if schema.table(name).column(column).type != "key"]  # keys only compare
    if clamped:
        parts = [tables[name][column] for name, column in clamped]
        lows, highs = zip(*(declared_bounds(schema, schema.table(name), column)
                            for name, column in clamped), strict=True)
        sizes = [len(part) for part in parts]
        flat = await clamp_public(party, Additive(np.concatenate(parts)),
                                  np.repeat(lows, sizes), np.repeat(highs, sizes))
        for (name, column), values in zip(clamped, _split(flat, parts), strict=True):
            tables[name][column] = values
    nullable = [(name, column) for name, column in clamped
                if schema.table(name).column(column).nullable]
    if nullable:
        await _restore_missing_cells(party, tables, nullable)
    return tables


async def _restore_missing_cells(party: Party, tables: dict[str, dict[str, Additive]],
                                 nullable: list[tuple[str, str]]) -> None:
    """value * (1 - flag), in place, for each (table, column), its flag now 0/1: a missing
    cell holds 0 again even where 0 is outside the column's range (the clamp moved it into the
    range), and a flag set beside a value cannot make an imputation add to it. One round."""
    parts = [tables[name][column] for name, column in nullable]
    present = np.concatenate([party.public(np.ones(len(tables[name][column]), U64))
                              - tables[name][null_flag(column)] for name, column in nullable])
    (kept,) = await flag_rows(party, Additive(present), Additive(np.concatenate(parts)[None, :]))
    for (name, column), values in zip(nullable, _split(Additive(kept), parts), strict=True):
        tables[name][column] = values
