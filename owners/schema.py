"""The public schema: tables, owners, typed columns, keys, and the foreign-key graph.

Every party holds the same schema file; its hash is checked on every upload, so the servers and
all owners agree on it. A schema is FK-acyclic with exactly one fact table: the one table no
foreign key references, from which every other table is reachable.

Column types and how their values are stored in the ring:
- integer, decimal (both with a declared [min, max]) and boolean: fixed point with the schema's
  frac_bits (booleans as 0 or 1), so numeric attributes of every table share one scale;
- categorical (with a declared vocabulary): the value's index in the vocabulary;
- key (format integer or string): see owners/keys.py. An integer key may declare its domain,
  `bits = b`: keys in [0, 2^b), checked at upload; a foreign key declares the same bits as the
  key it references. Sorts by such a key use b + 1 bits (padding rows take keys from 2^b up),
  every other key 63 bits (key_sort_bits).
Every table also gets the indicator column "_valid": 1 for real rows, 0 for padding. A column
declared `nullable = true` (not a key) may have empty cells: the cell stores 0 and the shared
column "_null_<column>" stores 1, so which cells are missing stays as secret as the values.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from twofold.mpc.errors import TwofoldError
from twofold.mpc.ring import FixedPoint
from twofold.owners.keys import KEY_BITS

INDICATOR = "_valid"
NULL_PREFIX = "_null_"
COLUMN_TYPES = ("integer", "decimal", "boolean", "categorical", "key")
KEY_FORMATS = ("integer", "string")
MAX_KEY_BITS = 61  # a declared domain and its padding keys stay below 2^62: exact encoding


class SchemaError(TwofoldError, ValueError):
    """A schema that cannot be used; the message names the file and the problem."""


def exact(value: float) -> str:
    """A number for a message: short (%g) when that is exact, else every digit it has, so a
    value just above a bound never prints as the bound."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] = ()
    key_format: str = "integer"
    nullable: bool = False  # cells may be empty; a hidden shared flag marks them
    bits: int | None = None  # a key's declared domain [0, 2^bits)

    @property
    def numeric(self) -> bool:
        return self.type in ("integer", "decimal", "boolean")

    @property
    def declared_range(self) -> tuple[float, float]:
        """A numeric column's [min, max] (a boolean's [0, 1])."""
        if self.min is None or self.max is None:
            raise SchemaError(f"column {self.name} ({self.type}) has no declared range")
        return self.min, self.max


def key_sort_bits(column: Column) -> int:
    """Bits a sort by this key column needs: its declared domain and one bit more for the
    padding rows' keys (2^bits + i), or 63 for a key without a declared domain (exact integers
    below 2^62, hashed keys below 2^63)."""
    return column.bits + 1 if column.bits is not None else KEY_BITS


def null_flag(column: str) -> str:
    """The stored column of 0/1 flags that marks a nullable column's missing cells."""
    return f"{NULL_PREFIX}{column}"


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    references: str


@dataclass(frozen=True)
class Table:
    name: str
    owner: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...]
    rows: int | None  # public row count after padding, if the schema fixes it

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    @staticmethod
    def key_column(columns: tuple[str, ...]) -> str:
        """The stored column holding a (possibly composite) key, combined into one code."""
        return columns[0] if len(columns) == 1 else "_key_" + "_".join(columns)

    @property
    def composite_keys(self) -> list[tuple[str, ...]]:
        keys = [self.primary_key] + [fk.columns for fk in self.foreign_keys]
        unique = list(dict.fromkeys(k for k in keys if len(k) > 1))
        return unique

    @property
    def stored_columns(self) -> list[str]:
        """Names of the shared columns a server stores, in order."""
        return (self.column_names + [self.key_column(k) for k in self.composite_keys]
                + [null_flag(c.name) for c in self.columns if c.nullable] + [INDICATOR])


@dataclass(frozen=True)
class Schema:
    tables: dict[str, Table]
    fact: str
    primary_private: str | None
    fixed: FixedPoint
    hash: str  # sha256 of the canonical form: what every party must agree on

    def table(self, name: str) -> Table:
        if name not in self.tables:
            raise SchemaError(f"unknown table {name!r}{_suggest(name, self.tables)}")
        return self.tables[name]

    def described_by(self, name: str) -> set[str]:
        """The tables whose entities a row of this table belongs to: itself and every table
        it reaches by foreign keys (an order describes its customer, the customer's nation)."""
        reached, frontier = {name}, [name]
        while frontier:
            for foreign_key in self.table(frontier.pop()).foreign_keys:
                if foreign_key.references not in reached:
                    reached.add(foreign_key.references)
                    frontier.append(foreign_key.references)
        return reached


def _suggest(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_schema(path: Path) -> Schema:
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SchemaError(f"{path}: {error}") from None
    try:
        return parse_schema(raw)
    except SchemaError as error:
        raise SchemaError(f"{path}: {error}") from None


def _number(where: str, spec: dict, key: str) -> float:
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError(f"{where}: needs a numeric '{key}'")
    return float(value)


def _parse_column(table: str, name: str, spec, fixed: FixedPoint) -> Column:
    where = f"table {table}, column {name}"
    if name.startswith("_"):
        raise SchemaError(f"{where}: names starting with '_' are reserved")
    if not isinstance(spec, dict) or spec.get("type") not in COLUMN_TYPES:
        raise SchemaError(f"{where}: type must be one of {', '.join(COLUMN_TYPES)}")
    kind = spec["type"]
    nullable = spec.get("nullable", False)
    if not isinstance(nullable, bool):
        raise SchemaError(f"{where}: nullable must be true or false")
    if nullable and kind == "key":
        raise SchemaError(f"{where}: a key cannot be nullable")
    if kind in ("integer", "decimal"):
        low, high = _number(where, spec, "min"), _number(where, spec, "max")
        if low > high:
            raise SchemaError(f"{where}: min {exact(low)} is above max {exact(high)}")
        if max(abs(low), abs(high)) >= fixed.max_abs:
            raise SchemaError(f"{where}: range exceeds the fixed-point range +-2^"
                              f"{62 - fixed.frac_bits} at {fixed.frac_bits} fractional bits")
        return Column(name, kind, low, high, nullable=nullable)
    if kind == "categorical":
        values = spec.get("values")
        if (not isinstance(values, list) or not values or len(set(values)) != len(values)
                or not all(isinstance(v, str) for v in values)):
            raise SchemaError(f"{where}: categorical needs 'values', a list of distinct strings")
        return Column(name, kind, values=tuple(values), nullable=nullable)
    if kind == "key":
        key_format = spec.get("format", "integer")
        if key_format not in KEY_FORMATS:
            raise SchemaError(f"{where}: key format must be one of {', '.join(KEY_FORMATS)}")
        bits = spec.get("bits")
        if bits is not None and (key_format != "integer" or isinstance(bits, bool)
                                 or not isinstance(bits, int) or not 1 <= bits <= MAX_KEY_BITS):
            raise SchemaError(f"{where}: bits (keys in [0, 2^bits)) must be an integer from 1 "
                              f"to {MAX_KEY_BITS}, for an integer key")
        return Column(name, kind, key_format=key_format, bits=bits)
    return Column(name, kind, 0.0, 1.0, nullable=nullable)


def _names(where: str, value) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise SchemaError(f"{where}: must be a column name or a list of column names")
    return tuple(value)


def _parse_table(name: str, spec, fixed: FixedPoint) -> Table:
    if not isinstance(spec, dict):
        raise SchemaError(f"table {name}: must be a TOML table")
    owner = spec.get("owner")
    if not isinstance(owner, str) or not owner:
        raise SchemaError(f"table {name}: needs an 'owner'")
    columns_spec = spec.get("columns")
    if not isinstance(columns_spec, dict) or not columns_spec:
        raise SchemaError(f"table {name}: needs a [tables.{name}.columns] section")
    columns = tuple(_parse_column(name, c, s, fixed) for c, s in columns_spec.items())
    known = {c.name: c for c in columns}
    primary_key = _names(f"table {name}, primary_key", spec.get("primary_key"))
    foreign_keys = []
    for entry in spec.get("foreign_keys", []):
        if not isinstance(entry, dict) or not isinstance(entry.get("references"), str):
            raise SchemaError(f"table {name}: each foreign key needs 'columns' and 'references'")
        foreign_keys.append(ForeignKey(_names(f"table {name}, foreign key", entry.get("columns")),
                                       entry["references"]))
    for key_columns, what in [(primary_key, "primary key")] + [
            (fk.columns, f"foreign key to {fk.references}") for fk in foreign_keys]:
        for column in key_columns:
            if column not in known:
                raise SchemaError(f"table {name}: {what} names unknown column "
                                  f"{column!r}{_suggest(column, known)}")
            if known[column].type != "key":
                raise SchemaError(f"table {name}: {what} column {column!r} must have "
                                  "type = \"key\"")
    rows = spec.get("rows")
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 1):
        raise SchemaError(f"table {name}: 'rows' must be a positive integer")
    return Table(name, owner, columns, primary_key, tuple(foreign_keys), rows)


def _key_signature(table: Table, columns: tuple[str, ...]) -> tuple:
    return tuple((table.column(c).type, table.column(c).key_format, table.column(c).bits)
                 for c in columns)


def _check_graph(tables: dict[str, Table], fact: str) -> None:
    for table in tables.values():
        for fk in table.foreign_keys:
            if fk.references not in tables:
                raise SchemaError(f"table {table.name}: foreign key references unknown table "
                                  f"{fk.references!r}{_suggest(fk.references, tables)}")
            target = tables[fk.references]
            if len(fk.columns) != len(target.primary_key):
                raise SchemaError(f"table {table.name}: foreign key ({', '.join(fk.columns)}) "
                                  f"has {len(fk.columns)} columns, the primary key of "
                                  f"{target.name} has {len(target.primary_key)}")
            if _key_signature(table, fk.columns) != _key_signature(target, target.primary_key):
                raise SchemaError(f"table {table.name}: foreign key ({', '.join(fk.columns)}) "
                                  f"does not match the type (format, bits) of {target.name}'s "
                                  f"primary key ({', '.join(target.primary_key)})")
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for fk in tables[name].foreign_keys:
            if state.get(fk.references) == "open":
                cycle = path[path.index(fk.references):] + [fk.references]
                raise SchemaError(f"foreign keys form a cycle: {' -> '.join(cycle)}")
            if fk.references not in state:
                visit(fk.references, path + [fk.references])
        state[name] = "done"

    for name in tables:
        if name not in state:
            visit(name, [name])
    referenced = {fk.references for t in tables.values() for fk in t.foreign_keys}
    roots = sorted(set(tables) - referenced)
    if len(roots) != 1:
        raise SchemaError(f"exactly one table may be referenced by no foreign key (the fact "
                          f"table); here: {', '.join(roots)}")
    if fact != roots[0]:
        raise SchemaError(f"fact table {fact!r} is referenced by a foreign key; the fact table "
                          f"is {roots[0]!r}")


def parse_schema(raw: dict) -> Schema:
    settings = raw.get("schema", {})
    frac_bits = settings.get("frac_bits", 16)
    if not isinstance(frac_bits, int) or not 4 <= frac_bits <= 28:
        raise SchemaError("[schema] frac_bits must be an integer from 4 to 28")
    fixed = FixedPoint(frac_bits)
    tables_raw = raw.get("tables")
    if not isinstance(tables_raw, dict) or not tables_raw:
        raise SchemaError("no [tables.NAME] sections")
    tables = {name: _parse_table(name, spec, fixed) for name, spec in tables_raw.items()}
    fact = settings.get("fact")
    if not isinstance(fact, str):
        raise SchemaError("[schema] needs 'fact', the fact table's name")
    if fact not in tables:
        raise SchemaError(f"[schema] fact table {fact!r} is not defined{_suggest(fact, tables)}")
    private = settings.get("primary_private")
    if private is not None and private not in tables:
        raise SchemaError(f"[schema] primary_private table {private!r} is not defined"
                          f"{_suggest(private, tables)}")
    _check_graph(tables, fact)
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return Schema(tables, fact, private, fixed, hashlib.sha256(canonical.encode()).hexdigest())
