"""Group-by with count, sum, min, max (and mean from sum and count), distinct projection, and
statistics over a joined table, on shares (section 5.4 of the seed paper).

Group-by sorts the rows by the group columns, on as few bits as the schema's declared domains,
vocabularies and ranges allow (GroupKey), finds where a group starts (the group keys differ
from the row above), runs segmented scans, and marks each group's last row as its output
row: valid there exactly when the group holds at least one real row. The table keeps as many
rows as the input, so the number of groups stays hidden from the servers; the other rows still
hold running values, which the release step (servers/release.py) zeroes before anything is
stored.

Distinct counts (how many different entities, e.g. customers, contribute to a group) feed the
owners' minimum group sizes: `first_occurrences` marks, in the original row order, the first
real row of each (group, entity) pair, and the marks are summed like any other value.

Means, variances and standard deviations are derived by the recipient from the revealed count,
sum and sum of squares (as Drynx does), so the recipient also learns those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import numpy as np

from twofold.mpc.party import Party
from twofold.mpc.protocols.arithmetic import fixed_mul, mul, truncate
from twofold.mpc.protocols.boolean import equal, flag_rows, less_than
from twofold.mpc.protocols.scan import segmented_scan
from twofold.mpc.protocols.sort import SortKey, apply_permutation, sort
from twofold.mpc.ring import U64, FixedPoint
from twofold.mpc.shares import Additive
from twofold.owners.schema import Column, key_sort_bits
from twofold.sorting_join.multiway import product
from twofold.sorting_join.table import SharedTable

EXTREME = 1 << 61  # stands in for +infinity (min) or -infinity (max) on dummy rows


def _numeric_domain(column: Column, fixed: FixedPoint) -> tuple[int, int, int]:
    """(lowest stored value, shift, bits) of a numeric column: every real row's stored value v
    has (v - lowest) >> shift in [0, 2^bits), exactly. Integers and booleans are stored as
    multiples of 2^f, so they sort on their integer part; decimals on every stored bit."""
    minimum, maximum = column.declared_range
    if column.type == "decimal":
        low, high = int(fixed.encode(minimum).view(np.int64)), int(
            fixed.encode(maximum).view(np.int64))
        return low, 0, max(1, (high - low).bit_length())
    low, high = math.ceil(minimum), math.floor(maximum)
    return low << fixed.frac_bits, fixed.frac_bits, max(1, (high - low).bit_length())


def group_key_bits(column: Column, fixed: FixedPoint) -> int:
    """The bits group-by sorts a group column on (servers/costs.py counts them too)."""
    if column.type == "categorical":
        return max(1, (len(column.values) - 1).bit_length())
    if column.type == "key":
        return key_sort_bits(column)
    return _numeric_domain(column, fixed)[2]


@dataclass(frozen=True)
class GroupKey:
    """A group column as grouping sorts and compares it: `key` holds (v - lowest) >> shift
    (v itself for keys and categoricals), whose width comes from the schema."""

    key: SortKey
    lowest: int = 0
    shift: int = 0

    def restore(self, party: Party, sorted_key: Additive) -> Additive:
        """The group column's stored value back from its (sorted) key."""
        lowest = party.public(np.full(len(sorted_key), self.lowest, np.int64).view(U64))
        return Additive((sorted_key << U64(self.shift)) + lowest)


async def group_keys(party: Party, table: SharedTable, names: list[str],
                     types: list[Column]) -> list[GroupKey]:
    """Keys for grouping by these columns, as narrow as the schema allows: a key by its
    declared domain (owners.schema.key_sort_bits), a categorical by its vocabulary, a numeric
    column by its declared range. Rows that are not real may hold values outside that range
    (0 after a join), so a numeric key is valid * (v - lowest), shifted exactly: dummy rows
    join the lowest value's group, to which they add nothing. 2 rounds if a key is numeric."""
    keys: dict[int, GroupKey] = {}  # by position; numeric columns' after the loop
    for i, (name, column) in enumerate(zip(names, types, strict=True)):
        if column.type in ("categorical", "key"):
            keys[i] = GroupKey(SortKey(table.column(name), group_key_bits(column, party.fixed),
                                       signed=False))
    numeric = [i for i in range(len(names)) if i not in keys]
    if numeric:
        domains = [_numeric_domain(types[i], party.fixed) for i in numeric]
        lowest = np.stack([np.full(table.rows, low, np.int64).view(U64)
                           for low, _, _ in domains])
        offsets = await mul(party, table.valid, Additive(
            np.stack([table.column(names[i]) for i in numeric]) - party.public(lowest)))
        whole = [row for row, (_, shift, _) in enumerate(domains) if shift]
        if whole:  # exact: the low f bits are zero
            offsets[whole] = await truncate(party, Additive(offsets[whole]),
                                            party.fixed.frac_bits)
        for row, (i, (low, shift, bits)) in enumerate(zip(numeric, domains, strict=True)):
            keys[i] = GroupKey(SortKey(Additive(offsets[row]), bits, signed=False), low, shift)
    return [keys[i] for i in range(len(names))]


@dataclass(frozen=True)
class Aggregate:
    op: str  # count, sum, min, max
    column: str | None = None

    @property
    def name(self) -> str:
        return "count" if self.op == "count" else f"{self.op}({self.column})"


async def _masked_extremes(party: Party, valid: Additive, values: Additive,
                           op: str) -> Additive:
    """Dummy rows get +EXTREME for min and -EXTREME for max, so they never win."""
    filler = party.public(np.full(np.shape(valid), EXTREME if op == "min" else -EXTREME,
                                  dtype=np.int64).view(U64))
    return Additive(filler + await mul(party, valid, Additive(values - filler)))


async def _starts(party: Party, keys: list[Additive]) -> Additive:
    """1 on the first row and wherever any key differs from the row above."""
    n = len(keys[0])
    ones = party.public(np.ones(n, U64))
    if n < 2:
        return ones
    same = await equal(party, Additive(np.stack([k[1:] for k in keys])),
                       Additive(np.stack([k[:-1] for k in keys])))
    continues = await product(party, cast(list[Additive], list(same)))
    return Additive(np.concatenate([ones[:1], ones[1:] - continues]))


async def first_occurrences(party: Party, keys: list[SortKey], valid: Additive) -> Additive:
    """0/1 per row, in the input order: 1 on exactly one real row of each distinct key tuple.

    Sorting by (dummy, keys) puts the real rows first, equal keys together; a real row is
    first when its keys differ from the real row above it. One sort of the key bits plus one
    bit, and one permutation back."""
    n = len(valid)
    if n == 0:
        return Additive(np.zeros(0, U64))
    dummy = Additive(party.public(np.ones(n, U64)) - valid)
    origin = party.public(np.arange(n, dtype=U64))
    moved = await sort(party, [valid, origin, *[k.column for k in keys]],
                       [SortKey(dummy, bits=1, signed=False), *keys])
    valid_sorted, origin_sorted, sorted_keys = moved[0], moved[1], moved[2:]
    starts = await _starts(party, sorted_keys)
    marks = await mul(party, starts, valid_sorted)
    (marks,) = await apply_permutation(party, origin_sorted, [marks])
    return marks


async def group_by(party: Party, table: SharedTable, group_columns: list[str],
                   group_types: list[Column], aggregates: list[Aggregate],
                   distinct: dict[str, SortKey] | None = None) -> SharedTable:
    """One row per input row; valid marks one row per non-empty group, which holds the group's
    aggregates. `distinct` maps a name to an entity key: the output gets the column
    "distinct(name)", the number of different entities among the group's real rows."""
    n = table.rows
    distinct = distinct or {}
    names = group_columns + [a.name for a in aggregates] + [f"distinct({d})" for d in distinct]
    if n == 0:
        return SharedTable({name: Additive(np.zeros(0, U64)) for name in names}, table.valid)
    grouping = await group_keys(party, table, group_columns, group_types)
    sort_keys = [group.key for group in grouping]
    marks = [await first_occurrences(party, [*sort_keys, entity], table.valid)
             for entity in distinct.values()]
    sums = [a.column for a in aggregates if a.op == "sum" and a.column]
    extremes = [(a, a.column) for a in aggregates if a.op in ("min", "max") and a.column]
    values = [table.column(c) for c in sums] + [table.column(c) for _, c in extremes]
    columns = [*(key.column for key in sort_keys), table.valid, *marks, *values]
    if sort_keys:  # no group columns: one group, in any order
        columns = await sort(party, columns, sort_keys)
    keys, valid = columns[:len(sort_keys)], columns[len(sort_keys)]
    marks = columns[len(keys) + 1:len(keys) + 1 + len(marks)]
    values = columns[len(keys) + 1 + len(marks):]
    ones = party.public(np.ones(n, U64))
    heads = (await _starts(party, keys) if keys
             else party.public((np.arange(n) == 0).astype(U64)))
    weighted = cast(list[Additive], list(await flag_rows(
        party, valid, Additive(np.stack(values[:len(sums)]))))) if sums else []
    count, *totals = await segmented_scan(party, heads, [valid, *marks, *weighted], "sum")
    results = {"count": count}
    # totals: the distinct marks, then the sums
    results.update({f"distinct({d})": total for d, total in zip(distinct, totals, strict=False)})
    results.update({f"sum({c})": total for c, total in zip(sums, totals[len(marks):], strict=True)})
    for (aggregate, _), column in zip(extremes, values[len(sums):], strict=True):
        masked = await _masked_extremes(party, valid, column, aggregate.op)
        (results[aggregate.name],) = await segmented_scan(party, heads, [masked], aggregate.op)
    last = Additive(np.concatenate([heads[1:], ones[:1]]))
    nonempty = Additive(ones - await equal(party, count, Additive(np.zeros(n, U64))))
    output_valid = await mul(party, last, nonempty)
    out = {name: group.restore(party, key) for name, group, key in zip(group_columns, grouping,
                                                                       keys, strict=True)}
    out.update({name: results[name] for name in names[len(group_columns):]})
    return SharedTable(out, output_valid)


async def _reduce_extreme(party: Party, values: Additive, op: str) -> Additive:
    """min or max of each row of a (k, n) array, by halving: ceil(log2 n) comparisons."""
    while values.shape[1] > 1:
        half = values.shape[1] // 2
        first, second = Additive(values[:, :half]), Additive(values[:, half:2 * half])
        a, b = (first, second) if op == "min" else (second, first)
        keep_first = await less_than(party, a, b)  # first wins the comparison
        best = second + await mul(party, keep_first, Additive(first - second))
        values = Additive(np.concatenate([best, values[:, 2 * half:]], axis=1))
    return Additive(values[:, 0])


async def statistics(party: Party, table: SharedTable, numeric: list[str],
                     categorical: dict[str, int],
                     distinct: dict[str, SortKey] | None = None,
                     extremes: bool = True) -> dict[str, Additive]:
    """Shares of count; per numeric column sum, sum of squares, min and max (unless not
    `extremes`); per categorical
    column (name -> vocabulary size) the count of each value; per `distinct` entity key
    (name -> sort key) "distinct(name)", the number of different entities among the real
    rows, and per histogram "distinct(name) in histogram(column)", that number per value.
    Scalars are 1-element arrays."""
    valid, n = table.valid, table.rows
    out = {"count": Additive(valid.sum(dtype=U64, keepdims=True))}
    if numeric:
        stacked = Additive(np.stack([table.column(c) for c in numeric]))
        weighted = await flag_rows(party, valid, stacked)
        squares = await fixed_mul(party, weighted, stacked)
        if n and extremes:
            mask = Additive(np.broadcast_to(valid, stacked.shape))
            lows = await _masked_extremes(party, mask, stacked, "min")
            highs = await _masked_extremes(party, mask, stacked, "max")
            minimum = await _reduce_extreme(party, lows, "min")
            maximum = await _reduce_extreme(party, highs, "max")
        else:
            minimum = maximum = Additive(np.zeros(len(numeric), U64))
        for i, column in enumerate(numeric):
            out[f"sum({column})"] = Additive(weighted[i].sum(dtype=U64, keepdims=True))
            out[f"sumsq({column})"] = Additive(squares[i].sum(dtype=U64, keepdims=True))
            if extremes:
                out[f"min({column})"] = Additive(minimum[i:i + 1])
                out[f"max({column})"] = Additive(maximum[i:i + 1])
    hits = {}
    for column, size in categorical.items():
        codes = table.column(column)
        targets = party.public(np.repeat(np.arange(size, dtype=U64)[:, None], n, axis=1))
        hits[column] = await equal(party, Additive(np.broadcast_to(codes, (size, n))), targets)
        counted = await flag_rows(party, valid, hits[column])
        out[f"histogram({column})"] = Additive(counted.sum(axis=1, dtype=U64))
    for name, entity_key in (distinct or {}).items():
        marks = await first_occurrences(party, [entity_key], valid)
        out[f"distinct({name})"] = Additive(marks.sum(dtype=U64, keepdims=True))
        for column, size in categorical.items():
            bin_key = SortKey(table.column(column), max(1, (size - 1).bit_length()), False)
            marks = await first_occurrences(party, [bin_key, entity_key], valid)
            per_bin = await flag_rows(party, marks, hits[column])
            out[f"distinct({name}) in histogram({column})"] = Additive(
                per_bin.sum(axis=1, dtype=U64))
    return out
