"""Random relational data, its secret shares, and plaintext references (pandas) for joins."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.support.harness import reconstruct, run_pair, shares_of
from twofold.mpc.ring import U64
from twofold.owners.schema import INDICATOR, Schema, parse_schema
from twofold.sorting_join.plan import plan_join
from twofold.sorting_join.table import SharedTable


def random_schema(rng: np.random.Generator, tables: int) -> Schema:
    """Table t0 is the fact table; every other table is referenced by an earlier one, and
    extra references from earlier to later tables make diamonds (non-tree schemas)."""
    names = [f"t{i}" for i in range(tables)]
    edges = {name: set() for name in names}
    for i in range(1, tables):
        edges[names[rng.integers(0, i)]].add(names[i])
    for _ in range(rng.integers(0, tables)):
        a, b = sorted(rng.choice(tables, 2, replace=False))
        edges[names[a]].add(names[b])
    raw = {"schema": {"fact": "t0"}, "tables": {}}

    def key(table: str) -> dict:  # every other table declares its keys' domain (ids < 2^15)
        return {"type": "key", "bits": 15} if int(table[1:]) % 2 else {"type": "key"}

    for name in names:
        columns = {"id": key(name), "x": {"type": "decimal", "min": -1000, "max": 1000},
                   "c": {"type": "categorical", "values": ["u", "v", "w"]}}
        columns.update({f"fk_{dst}": key(dst) for dst in sorted(edges[name])})
        raw["tables"][name] = {
            "owner": f"owner{rng.integers(0, 3)}", "primary_key": "id", "columns": columns,
            "foreign_keys": [{"columns": [f"fk_{dst}"], "references": dst}
                             for dst in sorted(edges[name])]}
    return parse_schema(raw)


def random_tables(rng, schema: Schema, max_rows: int = 30) -> dict[str, pd.DataFrame]:
    """Plaintext tables with dummy rows (valid 0), dangling foreign keys and empty tables."""
    frames = {}
    for name in reversed(list(schema.tables)):  # referenced tables first
        table = schema.table(name)
        rows = int(rng.integers(0, max_rows))
        frame = pd.DataFrame({
            "id": rng.choice(10_000, rows, replace=False),
            "x": np.round(rng.uniform(-1000, 1000, rows), 3),
            "c": rng.integers(0, 3, rows),
            INDICATOR: (rng.random(rows) < 0.85).astype(np.int64)})
        for fk in table.foreign_keys:
            targets = frames[fk.references]["id"].to_numpy()
            choices = np.concatenate([targets, [20_000, 20_001]])  # dangling references
            frame[fk.columns[0]] = rng.choice(choices, rows) if rows else []
        frames[name] = frame
    return frames


def encode(schema: Schema, name: str, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    table = schema.table(name)
    out = {}
    for column in table.columns:
        values = frame[column.name].to_numpy()
        out[column.name] = (schema.fixed.encode(values) if column.numeric
                            else values.astype(np.int64).view(U64))
    out[INDICATOR] = frame[INDICATOR].to_numpy().astype(U64)
    return out


def share_tables(schema: Schema, frames, rng):
    """Two servers' SharedTables, qualified column names."""
    sides = ({}, {})
    for name, frame in frames.items():
        encoded = encode(schema, name, frame)
        pairs = {column: shares_of(values, rng) for column, values in encoded.items()}
        for p in (0, 1):
            sides[p][name] = SharedTable(
                {f"{name}.{c}": pair[p] for c, pair in pairs.items() if c != INDICATOR},
                pairs[INDICATOR][p])
    return sides


def reference_join(schema: Schema, frames, tables=None) -> pd.DataFrame:
    """The natural join along the foreign keys (each table once), real rows only."""
    plan = plan_join(schema, tables)
    def real(name):
        frame = frames[name][frames[name][INDICATOR] == 1].drop(columns=[INDICATOR])
        return frame.add_prefix(f"{name}.")
    merged, done = real(plan.root), {plan.root}
    queue = [plan.root]
    while queue:
        source = queue.pop(0)
        for fk in schema.table(source).foreign_keys:
            if fk.references not in plan.tables:
                continue
            left, right = f"{source}.{fk.columns[0]}", f"{fk.references}.id"
            if fk.references in done:
                merged = merged[merged[left] == merged[right]]
            else:
                merged = merged.merge(real(fk.references), left_on=left, right_on=right)
                done.add(fk.references)
                queue.append(fk.references)
    return merged


def run_on_shares(program, sides, *args, timeout_s=60):
    return run_pair(program, (sides[0], *args), (sides[1], *args), timeout_s=timeout_s)


def real_rows(schema: Schema, result_pair, columns) -> pd.DataFrame:
    """Reconstruct (valid, columns...) and keep the rows with valid = 1, decoded."""
    valid, *values = reconstruct(result_pair)
    keep = valid == 1
    assert set(np.unique(valid)) <= {0, 1}
    out = {}
    for name, column in zip(columns, values, strict=True):
        table, _, field = name.partition(".")
        spec = schema.table(table).column(field) if not field.startswith("_") else None
        decoded = (schema.fixed.decode(column) if spec is not None and spec.numeric
                   else column.view(np.int64))
        out[name] = decoded[keep]
    return pd.DataFrame(out)


def same_rows(got: pd.DataFrame, expected: pd.DataFrame) -> bool:
    columns = list(got.columns)
    a = got[columns].round(3).sort_values(columns).reset_index(drop=True)
    b = (expected[columns].round(3).astype(a.dtypes.to_dict()).sort_values(columns)
         .reset_index(drop=True))
    return a.equals(b)
