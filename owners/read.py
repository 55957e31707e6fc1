"""Reading an owner's CSV or Parquet file and checking every value against the schema.

Nothing here touches the network: a file either passes every check and becomes typed columns,
or fails with an UploadError naming the file, the row and the column.
"""

from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from owners.schema import Column, Table

INTEGER_PATTERN = r"^[+-]?[0-9]+$"
DECIMAL_PATTERN = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
TRUE_WORDS = {"true", "t", "yes", "1"}
FALSE_WORDS = {"false", "f", "no", "0"}


class UploadError(ValueError):
    """Input that cannot be uploaded; nothing has been sent."""


@dataclass
class SourceFile:
    path: Path
    data: pa.Table
    is_csv: bool

    def where(self, row: int, column: str) -> str:
        line = f" (line {row + 2})" if self.is_csv else ""
        return f"{self.path}: row {row + 1}{line}, column {column}"


def read_source(path: Path) -> SourceFile:
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with path.open(newline="") as handle:
                header = next(csv.reader(handle), None)
            if not header:
                raise UploadError(f"{path}: empty file, expected a header row")
            options = pacsv.ConvertOptions(column_types={name: pa.string() for name in header},
                                           strings_can_be_null=True, null_values=[""])
            return SourceFile(path, pacsv.read_csv(path, convert_options=options), True)
        if suffix in (".parquet", ".pq"):
            return SourceFile(path, pq.read_table(path), False)
    except (OSError, pa.ArrowException) as error:
        raise UploadError(f"{path}: {error}") from None
    raise UploadError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")


def check_column_names(source: SourceFile, table: Table) -> None:
    present, expected = list(source.data.column_names), table.column_names
    if len(set(present)) != len(present):
        duplicate = next(name for name in present if present.count(name) > 1)
        raise UploadError(f"{source.path}: column {duplicate!r} appears twice")
    for name in present:
        if name not in expected:
            close = difflib.get_close_matches(name, expected, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UploadError(f"{source.path}: column {name!r} is not in table {table.name}{hint}")
    for name in expected:
        if name not in present:
            raise UploadError(f"{source.path}: missing column {name!r} of table {table.name}")


def _first(mask: np.ndarray) -> int | None:
    bad = np.flatnonzero(mask)
    return int(bad[0]) if len(bad) else None


def _as_strings(array: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.utf8_trim_whitespace(pc.cast(array, pa.string()))


def _check_present(source: SourceFile, name: str, array: pa.ChunkedArray) -> None:
    row = _first(array.is_null().to_numpy(zero_copy_only=False))
    if row is not None:
        raise UploadError(f"{source.where(row, name)}: missing value")


def _numbers(source: SourceFile, column: Column, array: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
        values = array.to_numpy().astype(np.float64)
    else:
        text = _as_strings(array)
        pattern = INTEGER_PATTERN if column.type == "integer" else DECIMAL_PATTERN
        ok = pc.match_substring_regex(text, pattern).to_numpy(zero_copy_only=False)
        row = _first(~ok)
        if row is not None:
            raise UploadError(f"{source.where(row, column.name)}: {text[row].as_py()!r} is not "
                              f"{'an integer' if column.type == 'integer' else 'a number'}")
        values = pc.cast(text, pa.float64()).to_numpy()
    row = _first(~np.isfinite(values))
    if row is not None:
        raise UploadError(f"{source.where(row, column.name)}: {values[row]} is not a finite number")
    if column.type == "integer":
        row = _first(values != np.round(values))
        if row is not None:
            raise UploadError(f"{source.where(row, column.name)}: {values[row]} is not an integer")
    for row, bound, word in ((_first(values < column.min), column.min, "below the declared min"),
                             (_first(values > column.max), column.max, "above the declared max")):
        if row is not None:
            raise UploadError(f"{source.where(row, column.name)}: {values[row]:g} is {word} "
                              f"{bound:g}")
    return values


def _booleans(source: SourceFile, column: Column, array: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_boolean(array.type):
        return array.to_numpy(zero_copy_only=False).astype(bool)
    words = pc.utf8_lower(_as_strings(array))
    truthy = pc.is_in(words, value_set=pa.array(sorted(TRUE_WORDS))).to_numpy(zero_copy_only=False)
    falsy = pc.is_in(words, value_set=pa.array(sorted(FALSE_WORDS))).to_numpy(zero_copy_only=False)
    row = _first(~(truthy | falsy))
    if row is not None:
        raise UploadError(f"{source.where(row, column.name)}: {words[row].as_py()!r} is not a "
                          "boolean (true/false, yes/no, 1/0)")
    return truthy


def _categories(source: SourceFile, column: Column, array: pa.ChunkedArray) -> np.ndarray:
    text = _as_strings(array)
    codes = pc.index_in(text, value_set=pa.array(column.values)).to_numpy(zero_copy_only=False)
    row = _first(np.isnan(codes.astype(np.float64)))
    if row is not None:
        raise UploadError(f"{source.where(row, column.name)}: {text[row].as_py()!r} is not in the "
                          f"vocabulary {list(column.values)}")
    return codes.astype(np.int64)


def _keys(source: SourceFile, column: Column, array: pa.ChunkedArray) -> np.ndarray:
    if column.key_format == "string":
        return np.asarray(pc.cast(array, pa.string()).to_pylist(), dtype=object)
    if pa.types.is_integer(array.type):
        return array.to_numpy().astype(np.int64)
    text = _as_strings(array)
    ok = pc.match_substring_regex(text, INTEGER_PATTERN).to_numpy(zero_copy_only=False)
    row = _first(~ok)
    if row is not None:
        raise UploadError(f"{source.where(row, column.name)}: {text[row].as_py()!r} is not an "
                          "integer key (declare format = \"string\" for other keys)")
    try:
        return pc.cast(text, pa.int64()).to_numpy()
    except pa.ArrowInvalid:
        big = [abs(int(v)) >= 2**63 for v in text.to_pylist()]
        raise UploadError(f"{source.where(big.index(True), column.name)}: integer key outside "
                          "the 64-bit range (declare format = \"string\")") from None


PARSERS = {"integer": _numbers, "decimal": _numbers, "boolean": _booleans,
           "categorical": _categories, "key": _keys}


def typed_columns(source: SourceFile, table: Table) -> dict[str, np.ndarray]:
    """Every column checked and converted: floats for numbers, bools, vocabulary indices for
    categoricals, int64 or str for keys."""
    check_column_names(source, table)
    typed = {}
    for column in table.columns:
        array = source.data.column(column.name)
        _check_present(source, column.name, array)
        typed[column.name] = PARSERS[column.type](source, column, array)
    return typed
