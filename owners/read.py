"""Reading an owner's CSV or Parquet file and checking every value against the schema.

Nothing here touches the network: a file either passes every check and becomes typed columns,
or fails with an UploadError naming the file, the row and the column.

One rule for text, whatever the column and the file type: leading and trailing white space is
removed from every value before it is checked or encoded (so " ORD-1 " is the key "ORD-1", as
" 1333 " is the integer key 1333); white space inside a value is kept. A UTF-8 byte order mark
before a CSV header is ignored, and the header is read once, so both readers see the same
column names.
"""

from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from twofold.mpc.errors import TwofoldError
from twofold.owners.schema import Column, Table, exact, null_flag

INTEGER_PATTERN = r"^[+-]?[0-9]+$"
INTEGER_KEY_PATTERN = r"^-?[0-9]+$"  # one spelling per key: "+5" would be a second "5"
DECIMAL_PATTERN = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
TRUE_WORDS = {"true", "t", "yes", "1"}
FALSE_WORDS = {"false", "f", "no", "0"}


class UploadError(TwofoldError, ValueError):
    """Input that cannot be uploaded; nothing has been sent."""


@dataclass
class SourceFile:
    path: Path
    data: pa.Table
    is_csv: bool

    def where(self, row: int, column: str) -> str:
        line = f" (line {row + 2})" if self.is_csv else ""
        return f"{self.path}: row {row + 1}{line}, column {column}"


def read_source(data: Path | pd.DataFrame, table: str = "") -> SourceFile:
    """A CSV or Parquet file, or a pandas DataFrame (its errors name "DataFrame for TABLE")."""
    if isinstance(data, pd.DataFrame):
        try:
            return SourceFile(Path(f"DataFrame for {table}"),
                              pa.Table.from_pandas(data, preserve_index=False), False)
        except (pa.ArrowException, ValueError, TypeError) as error:
            raise UploadError(f"DataFrame for {table}: {error}") from None
    path = Path(data)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return SourceFile(path, _read_csv(path), True)
        if suffix in (".parquet", ".pq"):
            return SourceFile(path, pq.read_table(path), False)
    except (OSError, pa.ArrowException) as error:
        raise UploadError(f"{path}: {error}") from None
    raise UploadError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")


def _read_csv(path: Path) -> pa.Table:
    """Every column as text. The header is read here, once, and given to Arrow; values are read
    as bytes and decoded column by column, so invalid UTF-8 is reported with its row."""
    with path.open("rb") as handle:
        first_line = handle.readline()
    try:
        header = next(csv.reader([first_line.decode("utf-8-sig")]), None)
    except UnicodeDecodeError:
        raise UploadError(f"{path}: line 1 (the header) is not valid UTF-8") from None
    if not header:
        raise UploadError(f"{path}: empty file, expected a header row")
    data = pacsv.read_csv(
        path, read_options=pacsv.ReadOptions(column_names=header, skip_rows=1),
        convert_options=pacsv.ConvertOptions(column_types={name: pa.binary() for name in header},
                                             strings_can_be_null=True, null_values=[""]))
    columns = []
    for name, array in zip(header, data.columns, strict=True):
        try:
            columns.append(pc.cast(array, pa.string()))
        except pa.ArrowInvalid:
            row = next(row for row, value in enumerate(array.to_pylist())
                       if value is not None and not _is_utf8(value))
            raise UploadError(f"{path}: row {row + 1} (line {row + 2}), column {name}: not "
                              "valid UTF-8") from None
    return pa.Table.from_arrays(columns, names=header)


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


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
        raise UploadError(f"{source.where(row, name)}: missing value (cells may be empty "
                          "only in a column the schema declares nullable = true, never a key)")


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
    low, high = column.declared_range
    for row, bound, word in ((_first(values < low), low, "below the declared min"),
                             (_first(values > high), high, "above the declared max")):
        if row is not None:
            raise UploadError(f"{source.where(row, column.name)}: {exact(values[row])} is {word} "
                              f"{exact(bound)}")
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
    keys = _key_values(source, column, array)
    if column.bits is not None:  # the declared domain [0, 2^bits)
        row = _first((keys < 0) | (keys >= 1 << column.bits))
        if row is not None:
            raise UploadError(f"{source.where(row, column.name)}: key {keys[row]} is outside "
                              f"the declared domain [0, 2^{column.bits})")
    return keys


def _key_values(source: SourceFile, column: Column, array: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_integer(array.type) and column.key_format == "integer":
        return array.to_numpy().astype(np.int64)
    text = _as_strings(array)
    row = _first(pc.equal(text, "").to_numpy(zero_copy_only=False))
    if row is not None:
        raise UploadError(f"{source.where(row, column.name)}: missing value (only white space)")
    if column.key_format == "string":
        return np.asarray(text.to_pylist(), dtype=object)
    ok = pc.match_substring_regex(text, INTEGER_KEY_PATTERN).to_numpy(zero_copy_only=False)
    row = _first(~ok)
    if row is not None:
        raise UploadError(f"{source.where(row, column.name)}: {text[row].as_py()!r} is not an "
                          "integer key (digits with an optional '-'; declare format = "
                          "\"string\" for other keys)")
    try:
        return pc.cast(text, pa.int64()).to_numpy()
    except pa.ArrowInvalid:  # the pattern leaves only values beyond 64 bits
        row = next(row for row, value in enumerate(text.to_pylist())
                   if not -2**63 <= int(value) < 2**63)
        raise UploadError(f"{source.where(row, column.name)}: integer key outside the 64-bit "
                          "range (declare format = \"string\")") from None


PARSERS = {"integer": _numbers, "decimal": _numbers, "boolean": _booleans,
           "categorical": _categories, "key": _keys}


def _missing(array: pa.ChunkedArray) -> np.ndarray:
    """Empty cells (or white space only, which the trimming rule makes empty)."""
    if pa.types.is_string(array.type) or pa.types.is_binary(array.type):
        blank = pc.equal(pc.utf8_trim_whitespace(pc.cast(array, pa.string())), "")
        return (array.is_null().to_numpy(zero_copy_only=False)
                | pc.fill_null(blank, False).to_numpy(zero_copy_only=False))
    return array.is_null().to_numpy(zero_copy_only=False)


def _placeholder(column: Column) -> str:
    """A valid spelling put in the empty cells of a nullable column while it is checked."""
    if column.type == "categorical":
        return column.values[0]
    return "false" if column.type == "boolean" else exact(column.declared_range[0])


def typed_columns(source: SourceFile, table: Table) -> dict[str, np.ndarray]:
    """Every column checked and converted: floats for numbers, bools, vocabulary indices for
    categoricals, int64 or str for keys; for a nullable column also its flags (bool, under
    null_flag(name)), its missing cells holding 0."""
    check_column_names(source, table)
    typed = {}
    for column in table.columns:
        array = source.data.column(column.name)
        if not column.nullable:
            _check_present(source, column.name, array)
            typed[column.name] = PARSERS[column.type](source, column, array)
            continue
        missing = _missing(array)
        text = pc.cast(array, pa.string())
        filled = pa.chunked_array([pc.if_else(pa.array(missing), _placeholder(column),
                                              text.combine_chunks())])
        values = np.where(missing, 0, PARSERS[column.type](source, column, filled))
        typed[column.name], typed[null_flag(column.name)] = values, missing
    return typed
