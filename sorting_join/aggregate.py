"""Group-by with count, sum, min, max (and mean from sum and count), distinct projection, and
statistics over a joined table, on shares (section 5.4 of the seed paper).

Group-by sorts the rows by the group columns, finds where a group starts (the group columns
differ from the row above), runs segmented scans, and keeps each group's last row as its output
row: valid there exactly when the group holds at least one real row. The output has as many
rows as the input, so the number of groups stays hidden from the servers; the recipient drops
the rows whose indicator is 0.

Means, variances and standard deviations are derived by the recipient from the revealed count,
sum and sum of squares (as Drynx does), so the recipient also learns those.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mpc.party import Party
from mpc.protocols.arithmetic import fixed_mul, mul, mul_rows
from mpc.protocols.boolean import equal, less_than
from mpc.protocols.scan import segmented_scan
from mpc.protocols.sort import SortKey, sort
from owners.keys import KEY_BITS
from owners.schema import Column
from sorting_join.multiway import product
from sorting_join.table import SharedTable

U64 = np.uint64
EXTREME = 1 << 61  # stands in for +infinity (min) or -infinity (max) on dummy rows


def sort_bits(column: Column) -> tuple[int, bool]:
    """(bits, signed) of a column's stored values, for sorting by it."""
    if column.type == "categorical":
        return max(1, (len(column.values) - 1).bit_length()), False
    if column.type == "key":
        return KEY_BITS, False
    return 64, True


@dataclass(frozen=True)
class Aggregate:
    op: str  # count, sum, min, max
    column: str | None = None

    @property
    def name(self) -> str:
        return "count" if self.op == "count" else f"{self.op}({self.column})"


async def _masked_extremes(party: Party, valid, values, op: str):
    """Dummy rows get +EXTREME for min and -EXTREME for max, so they never win."""
    filler = party.public(np.full(np.shape(valid), EXTREME if op == "min" else -EXTREME,
                                  dtype=np.int64).view(U64))
    return filler + await mul(party, valid, values - filler)


async def group_by(party: Party, table: SharedTable, group_columns: list[str],
                   group_types: list[Column], aggregates: list[Aggregate]) -> SharedTable:
    """One output row per input row; valid marks one row per non-empty group."""
    n = table.rows
    if n == 0:
        names = group_columns + [a.name for a in aggregates]
        return SharedTable({name: np.zeros(0, U64) for name in names}, table.valid)
    sums = [a.column for a in aggregates if a.op == "sum"]
    extremes = [a for a in aggregates if a.op in ("min", "max")]
    values = [table.column(c) for c in sums] + [table.column(a.column) for a in extremes]
    keys = [table.column(c) for c in group_columns]
    sort_keys = [SortKey(k, *sort_bits(t)) for k, t in zip(keys, group_types)]
    sorted_columns = await sort(party, [*keys, table.valid, *values], sort_keys)
    keys, valid, values = (sorted_columns[:len(keys)], sorted_columns[len(keys)],
                           sorted_columns[len(keys) + 1:])
    ones = party.public(np.ones(n, U64))
    if n > 1:
        same = await equal(party, np.stack([k[1:] for k in keys]), np.stack([k[:-1] for k in keys]))
        continues = await product(party, list(same))
        heads = np.concatenate([ones[:1], ones[1:] - continues])
    else:
        heads = ones
    weighted = list(await mul_rows(party, valid, np.stack(values[:len(sums)]))) if sums else []
    count, *totals = await segmented_scan(party, heads, [valid, *weighted], "sum")
    results = {"count": count}
    results.update({f"sum({c})": total for c, total in zip(sums, totals)})
    for aggregate, column in zip(extremes, values[len(sums):]):
        masked = await _masked_extremes(party, valid, column, aggregate.op)
        (results[aggregate.name],) = await segmented_scan(party, heads, [masked], aggregate.op)
    last = np.concatenate([heads[1:], ones[:1]])
    nonempty = ones - await equal(party, count, np.zeros(n, U64))
    output_valid = await mul(party, last, nonempty)
    columns = dict(zip(group_columns, keys))
    columns.update({a.name: results[a.name] for a in aggregates})
    return SharedTable(columns, output_valid)


async def _reduce_extreme(party: Party, values: np.ndarray, op: str) -> np.ndarray:
    """min or max of each row of a (k, n) array, by halving: ceil(log2 n) comparisons."""
    while values.shape[1] > 1:
        half = values.shape[1] // 2
        first, second = values[:, :half], values[:, half:2 * half]
        a, b = (first, second) if op == "min" else (second, first)
        keep_first = await less_than(party, a, b)  # first wins the comparison
        best = second + await mul(party, keep_first, first - second)
        values = np.concatenate([best, values[:, 2 * half:]], axis=1)
    return values[:, 0]


async def statistics(party: Party, table: SharedTable, numeric: list[str],
                     categorical: dict[str, int]) -> dict[str, np.ndarray]:
    """Shares of count; per numeric column sum, sum of squares, min and max; per categorical
    column (name -> vocabulary size) the count of each value. Scalars are 1-element arrays."""
    valid, n = table.valid, table.rows
    out = {"count": valid.sum(dtype=U64, keepdims=True)}
    if numeric:
        stacked = np.stack([table.column(c) for c in numeric])
        weighted = await mul_rows(party, valid, stacked)
        squares = await fixed_mul(party, weighted, stacked)
        if n:
            mask = np.broadcast_to(valid, stacked.shape)
            lows = await _masked_extremes(party, mask, stacked, "min")
            highs = await _masked_extremes(party, mask, stacked, "max")
            minimum = await _reduce_extreme(party, lows, "min")
            maximum = await _reduce_extreme(party, highs, "max")
        else:
            minimum = maximum = np.zeros(len(numeric), U64)
        for i, column in enumerate(numeric):
            out[f"sum({column})"] = weighted[i].sum(dtype=U64, keepdims=True)
            out[f"sumsq({column})"] = squares[i].sum(dtype=U64, keepdims=True)
            out[f"min({column})"] = minimum[i:i + 1]
            out[f"max({column})"] = maximum[i:i + 1]
    for column, size in categorical.items():
        codes = table.column(column)
        targets = party.public(np.repeat(np.arange(size, dtype=U64)[:, None], n, axis=1))
        hits = await equal(party, np.broadcast_to(codes, (size, n)), targets)
        counted = await mul_rows(party, valid, hits)
        out[f"histogram({column})"] = counted.sum(axis=1, dtype=U64)
    return out
