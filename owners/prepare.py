"""From a checked file to the encoded table an owner shares: one uint64 column per stored
column, with combined keys, the indicator, and padding rows, in primary-key order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from twofold.mpc.prg import Prg
from twofold.mpc.ring import U64
from twofold.owners.keys import EXACT_LIMIT, HASHED_TAG, encode_keys
from twofold.owners.predicate import evaluate
from twofold.owners.read import SourceFile, UploadError, read_source, typed_columns
from twofold.owners.schema import INDICATOR, Schema, Table, null_flag


@dataclass
class PreparedTable:
    table: Table
    columns: dict[str, np.ndarray]  # stored column name -> encoded uint64 values
    real_rows: int

    @property
    def rows(self) -> int:
        return len(self.columns[INDICATOR])


def _encode(schema: Schema, table: Table, typed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    encoded = {}
    for column in table.columns:
        values = typed[column.name]
        if column.numeric:
            encoded[column.name] = schema.fixed.encode(values.astype(np.float64))
        elif column.type == "categorical":
            encoded[column.name] = values.astype(U64)
        else:
            encoded[column.name] = encode_keys([values])
    for key in table.composite_keys:
        encoded[table.key_column(key)] = encode_keys([typed[name] for name in key])
    for column in table.columns:
        if column.nullable:  # 0/1 integers, as the indicator
            encoded[null_flag(column.name)] = typed[null_flag(column.name)].astype(U64)
    return encoded


def _check_keys(source: SourceFile, table: Table, typed, encoded) -> None:
    """Unique primary key, and no two different hashed keys with the same code."""
    keys = [table.primary_key] + [fk.columns for fk in table.foreign_keys]
    for index, key in enumerate(keys):
        codes = encoded[table.key_column(key)]
        order = np.argsort(codes, kind="stable")
        same = np.flatnonzero(codes[order][1:] == codes[order][:-1])
        label = f"({', '.join(key)})"

        def original(row: int, key: tuple[str, ...] = key) -> tuple:
            return tuple(typed[name][row].item() if hasattr(typed[name][row], "item")
                         else typed[name][row] for name in key)

        for position in same:
            first, second = int(order[position]), int(order[position + 1])
            if original(first) != original(second):
                raise UploadError(f"{source.where(second, key[0])}: keys {original(first)} and "
                                  f"{original(second)} hash to the same code; rename one")
            if index == 0:
                raise UploadError(f"{source.where(second, key[0])}: primary key {label} value "
                                  f"{original(second)} repeats row {first + 1}")


def _padding_keys(path: Path, table: Table, count: int, prg: Prg | None,
                  taken: np.ndarray) -> np.ndarray:
    """Primary keys of the padding rows: for a key with a declared domain [0, 2^bits), the
    keys 2^bits + i just above it (so sorts need one bit more, never more: at most 2^bits
    padding rows); otherwise fresh codes in the hashed range."""
    (first, *rest) = table.primary_key
    bits = table.column(first).bits if not rest else None
    if bits is None:
        return _dummy_keys(prg or Prg.fresh(), count, taken)
    if count > 1 << bits:
        raise UploadError(f"{path}: {count} padding rows do not fit the {bits}-bit key "
                          f"{first} of table {table.name} (at most 2^{bits}); declare more bits")
    return (1 << bits) + np.arange(count, dtype=U64)


def _dummy_keys(prg: Prg, count: int, taken: np.ndarray) -> np.ndarray:
    """Fresh codes in the hashed range, distinct from each other and from real keys (a redraw
    happens with probability below count^2 / 2^61)."""
    while True:
        codes = (prg.words(count) >> U64(2)) | U64(HASHED_TAG)
        if len(np.unique(codes)) == count and not np.isin(codes, taken).any():
            return codes


def prepare(data: Path | pd.DataFrame, schema: Schema, table_name: str, *,
            where: str | None = None, pad_to: int | None = None,
            dummy_prg: Prg | None = None) -> PreparedTable:
    """Read, check and encode one owner's file (or DataFrame) for table_name. Raises
    UploadError on the first problem, naming file, row and column; nothing is sent by this
    function."""
    table = schema.table(table_name)
    source = read_source(data, table_name)
    path = source.path
    typed = typed_columns(source, table)
    if source.data.num_rows == 0:
        raise UploadError(f"{path}: no data rows, only a header; nothing was uploaded")
    encoded = _encode(schema, table, typed)
    _check_keys(source, table, typed, encoded)
    rows = source.data.num_rows
    if where:
        view: dict[str, np.ndarray] = {}
        for column in table.columns:  # missing cells as None (categorical) or NaN
            values = typed[column.name]
            view[column.name] = (np.asarray(column.values, dtype=object)[values]
                                 if column.type == "categorical" else values)
            if column.nullable:
                missing = typed[null_flag(column.name)]
                blank = np.array(None, object) if column.type == "categorical" else np.nan
                view[column.name] = np.where(missing, blank, view[column.name])
        keep = evaluate(where, view, rows)
        encoded = {name: values[keep] for name, values in encoded.items()}
        rows = int(keep.sum())
    target = _padded_size(path, table, rows, pad_to)
    pad = target - rows
    padded = {name: np.concatenate([values, np.zeros(pad, U64)])
              for name, values in encoded.items()}
    if pad:
        pk = table.key_column(table.primary_key)
        padded[pk][rows:] = _padding_keys(path, table, pad, dummy_prg, encoded[pk])
    padded[INDICATOR] = np.concatenate([np.ones(rows, U64), np.zeros(pad, U64)])
    # rows in primary-key order: the servers check that it strictly increases, which proves
    # it unique without a sort on shares (servers/upload_checks.py)
    order = np.argsort(padded[table.key_column(table.primary_key)], kind="stable")
    return PreparedTable(table, {name: padded[name][order] for name in table.stored_columns},
                         rows)


def _padded_size(path: Path, table: Table, rows: int, pad_to: int | None) -> int:
    if pad_to is not None and table.rows is not None and pad_to != table.rows:
        raise UploadError(f"{path}: --pad-to {pad_to} differs from the schema's public size "
                          f"{table.rows} for table {table.name}")
    target = table.rows if table.rows is not None else (pad_to if pad_to is not None else rows)
    if rows > target:
        raise UploadError(f"{path}: {rows} rows do not fit the public size {target} of table "
                          f"{table.name}; nothing was uploaded")
    if target > EXACT_LIMIT:
        raise UploadError(f"{path}: public size {target} is too large")
    return target
