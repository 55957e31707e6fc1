"""Predicates, group-by and statistics on shares against pandas."""

import numpy as np
import pandas as pd
import pytest

from tests.support.harness import reconstruct, run_pair, shares_of
from tests.support.joins import (
    random_schema,
    random_tables,
    reference_join,
    run_on_shares,
    share_tables,
)
from twofold.mpc.protocols.arithmetic import mul
from twofold.mpc.protocols.sort import SortKey
from twofold.owners.keys import encode_keys
from twofold.owners.schema import INDICATOR, key_sort_bits, parse_schema
from twofold.sorting_join.aggregate import Aggregate, group_by, group_keys, statistics
from twofold.sorting_join.multiway import run_join
from twofold.sorting_join.plan import plan_join
from twofold.sorting_join.predicate import Expression, PredicateError, column_type
from twofold.sorting_join.table import SharedTable


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(11)
    schema = random_schema(rng, 3)
    frames = random_tables(rng, schema, max_rows=60)
    return schema, frames, share_tables(schema, frames, rng)


def decode(schema, name, values):
    column = column_type(schema, name)
    return schema.fixed.decode(values) if column.numeric else values.view(np.int64)


PREDICATES = [
    ("t0.x > t1.x", lambda d: d["t0.x"] > d["t1.x"]),
    ("t0.x - 2 * t1.x <= 100.5", lambda d: d["t0.x"] - 2 * d["t1.x"] <= 100.5),
    ("not (t0.c == 'u') or t1.x * t0.x / 1000 >= 0",
     lambda d: (d["t0.c"] != 0) | (d["t1.x"] * d["t0.x"] / 1000 >= 0)),
    ("t0.c in ['v', 'w'] and t1.id != 5", lambda d: d["t0.c"].isin([1, 2]) & (d["t1.id"] != 5)),
    ("t0.c == t1.c", lambda d: d["t0.c"] == d["t1.c"]),
]


@pytest.mark.parametrize("text, reference", PREDICATES)
def test_type_2_predicates(world, text, reference):
    schema, frames, sides = world
    plan = plan_join(schema, ["t0", "t1"])  # random_schema makes t0 reference t1
    predicate = Expression(schema, text)

    async def program(party, tables):
        root = await run_join(party, plan, tables, predicate.columns | {"t0.id"})
        keep = await predicate.evaluate(party, root.columns)
        return [await mul(party, root.valid, keep), root.column("t0.id")]

    valid, ids = reconstruct(run_on_shares(program, sides))
    expected = reference_join(schema, frames, ["t0", "t1"])
    expected = expected[reference(expected)]
    assert sorted(ids.view(np.int64)[valid == 1].tolist()) == sorted(expected["t0.id"].tolist())


@pytest.mark.parametrize("text, message", [
    ("t0.x > 'u'", "cannot compare numeric with string"),
    ("t0.c < 'u'", "by order"),
    ("t0.id > 3", "by order"),
    ("t0.nope == 1", "unknown column 't0.nope'"),
    ("t0.x + t0.c > 1", "arithmetic needs numeric"),
    ("t0.x / t0.x > 1", "division only by a number"),
    ("t0.x", "not a true/false condition"),
    ("len(t0.x) > 1", "Call is not allowed"),
    ("t0.x / 0 > 1", "division by zero"),  # used to fail only at run time
    ("t0.x / (2 - 2) > 1", "division by zero"),
    ("t0.x * t1.x * t0.x * t1.x > 1", "a product of two columns must stay below 2\\^30"),
    ("t0.x * 1e12 > 1", "leaves the ring"),
    ("t0.x > 1e20", "outside the fixed-point range"),
    ("t0.id == 2.5", "key literal 2.5 is not an integer"),
    ("t0.c in [t1.c]", "needs a \\[list\\] of literals"),
])
def test_bad_predicates_are_refused(world, text, message):
    with pytest.raises(PredicateError, match=message):
        Expression(world[0], text)


EXACT_X = [-3.0, 0.0, 64.0, 65.3, 70.0, 99.0, 150.0, 999.5]
EXACT_C = [0, 1, 1, 2, 0, 1, 2, 2]
EXACT_ID = [-4, 0, 7, -4000, 12, 2**40, 3, 5]


@pytest.mark.parametrize("text, expected", [
    # constants encoded with 16 bits: 1/100000 was 1/65536 (rows above 49 passed) and
    # 1/1000 was 66/65536 (65.3 passed)
    ("t0.x / 100000 > 0.00075", [x > 75 for x in EXACT_X]),
    ("t0.x / 1000 > 0.0655", [x > 65.5 for x in EXACT_X]),
    ("t0.x * (1 / 3) >= 30", [x >= 90 for x in EXACT_X]),
    # repeated values counted a row twice: an indicator of 2, and -1 for not in
    ("t0.c in ['v', 'v']", [c == 1 for c in EXACT_C]),
    ("t0.c not in ['u', 'u', 'w']", [c == 1 for c in EXACT_C]),
    ("t0.x in [70, 70.0, 99]", [x in (70, 99) for x in EXACT_X]),
    ("t0.id in [-4, -4, 1099511627776]", [i in (-4, 2**40) for i in EXACT_ID]),
    # -4 was negated as a ring value; negative keys are hashed
    ("t0.id == -4", [i == -4 for i in EXACT_ID]),
])
def test_predicates_give_exact_0_1_indicators(world, rng, text, expected):
    schema = world[0]
    columns = {"t0.x": schema.fixed.encode(EXACT_X), "t0.c": np.array(EXACT_C, np.uint64),
               "t0.id": encode_keys([np.array(EXACT_ID)])}
    shared = {name: shares_of(values, rng) for name, values in columns.items()}
    predicate = Expression(schema, text)

    async def program(party, side):
        return await predicate.evaluate(party, {name: pair[side] for name, pair in shared.items()})

    got = reconstruct(run_pair(program, (0,), (1,)))
    assert got.tolist() == [int(e) for e in expected]


def test_group_by_matches_pandas(world):
    schema, frames, sides = world
    plan = plan_join(schema)
    aggregates = [Aggregate("count"), Aggregate("sum", "t0.x"), Aggregate("min", "t0.x"),
                  Aggregate("max", "t0.x")]
    group = ["t0.c"]

    async def program(party, tables):
        root = await run_join(party, plan, tables, {"t0.c", "t0.x"})
        out = await group_by(party, root, group, [column_type(schema, "t0.c")], aggregates)
        return [out.valid, out.column("t0.c"), *[out.column(a.name) for a in aggregates]]

    valid, codes, count, total, low, high = reconstruct(run_on_shares(program, sides))
    keep = valid == 1
    got = pd.DataFrame({"c": codes.view(np.int64)[keep], "count": count.view(np.int64)[keep],
                        "sum": schema.fixed.decode(total)[keep],
                        "min": schema.fixed.decode(low)[keep],
                        "max": schema.fixed.decode(high)[keep]}).sort_values("c")
    joined = reference_join(schema, frames)
    expected = joined.groupby("t0.c")["t0.x"].agg(["count", "sum", "min", "max"]).reset_index()
    assert got["c"].tolist() == expected["t0.c"].tolist()
    assert got["count"].tolist() == expected["count"].tolist()
    assert np.allclose(got["sum"], expected["sum"], atol=1e-3)
    assert np.allclose(got["min"], expected["min"]) and np.allclose(got["max"], expected["max"])


def test_distinct_projection_and_empty_input(world):
    schema, frames, sides = world

    async def program(party, tables, rows):
        table = tables["t0"]
        if rows == 0:
            table = SharedTable({c: v[:0] for c, v in table.columns.items()}, table.valid[:0])
        out = await group_by(party, table, ["t0.c"], [column_type(schema, "t0.c")], [])
        return [out.valid, out.column("t0.c")]

    valid, codes = reconstruct(run_on_shares(program, sides, 1))
    real = frames["t0"][frames["t0"][INDICATOR] == 1]
    assert sorted(codes.view(np.int64)[valid == 1].tolist()) == sorted(real["c"].unique().tolist())
    valid, codes = reconstruct(run_on_shares(program, sides, 0))
    assert len(valid) == 0


def test_statistics_match_pandas(world):
    schema, frames, sides = world

    async def program(party, tables):
        plan = plan_join(schema)
        root = await run_join(party, plan, tables, {"t0.x", "t0.c"})
        stats = await statistics(party, root, ["t0.x"], {"t0.c": 3})
        return [stats[k] for k in sorted(stats)]

    keys = sorted(["count", "sum(t0.x)", "sumsq(t0.x)", "min(t0.x)", "max(t0.x)",
                   "histogram(t0.c)"])
    got = dict(zip(keys, reconstruct(run_on_shares(program, sides)), strict=True))
    joined = reference_join(schema, frames)
    x = joined["t0.x"]
    assert got["count"].view(np.int64)[0] == len(joined)
    assert np.isclose(schema.fixed.decode(got["sum(t0.x)"])[0], x.sum(), atol=1e-2)
    assert np.isclose(schema.fixed.decode(got["sumsq(t0.x)"])[0], (x ** 2).sum(), rtol=1e-6, atol=1)
    if len(joined):
        assert np.isclose(schema.fixed.decode(got["min(t0.x)"])[0], x.min())
        assert np.isclose(schema.fixed.decode(got["max(t0.x)"])[0], x.max())
    counts = joined["t0.c"].value_counts().reindex([0, 1, 2], fill_value=0).tolist()
    assert got["histogram(t0.c)"].view(np.int64).tolist() == counts


def test_distinct_counts_per_group_match_pandas(world):
    """How many different t1 rows each t0.c group joins, dummy and unmatched rows aside."""
    schema, frames, sides = world
    plan = plan_join(schema, ["t0", "t1"])

    async def program(party, tables):
        root = await run_join(party, plan, tables, {"t0.c", "t1.id"})
        entity = SortKey(root.column("t1.id"), key_sort_bits(column_type(schema, "t1.id")),
                         signed=False)
        out = await group_by(party, root, ["t0.c"], [column_type(schema, "t0.c")],
                             [Aggregate("count")], {"t1": entity})
        stats = await statistics(party, root, [], {"t0.c": 3}, {"t1": entity})
        return [out.valid, out.column("t0.c"), out.column("distinct(t1)"),
                stats["distinct(t1)"], stats["distinct(t1) in histogram(t0.c)"]]

    valid, codes, distinct, total, per_bin = reconstruct(run_on_shares(program, sides))
    joined = reference_join(schema, frames, ["t0", "t1"])
    expected = joined.groupby("t0.c")["t1.id"].nunique()
    keep = valid == 1
    assert (dict(zip(codes[keep].tolist(), distinct[keep].tolist(), strict=True))
            == expected.to_dict())
    assert total.tolist() == [joined["t1.id"].nunique()]
    assert per_bin.tolist() == expected.reindex([0, 1, 2], fill_value=0).tolist()


NARROW_SCHEMA = parse_schema({"schema": {"fact": "t"}, "tables": {"t": {
    "owner": "o", "primary_key": "id", "columns": {
        "id": {"type": "key", "bits": 15}, "k": {"type": "integer", "min": 100, "max": 107},
        "d": {"type": "decimal", "min": -2.5, "max": 3.25}, "b": {"type": "boolean"},
        "c": {"type": "categorical", "values": ["u", "v", "w"]}, "x": {"type": "decimal",
                                                                    "min": -10, "max": 10}}}}})


def test_group_keys_take_their_widths_from_the_schema():
    schema = NARROW_SCHEMA
    table = SharedTable({f"t.{c}": np.zeros(4, np.uint64) for c in ("id", *"kdbcx")},
                        np.zeros(4, np.uint64))
    names = ["t.id", "t.k", "t.d", "t.b", "t.c"]

    async def program(party):
        keys = await group_keys(party, table, names, [column_type(schema, n) for n in names])
        return [(group.key.bits, group.key.signed) for group in keys]

    widths, _ = run_pair(program)
    assert widths == [(16, False), (3, False), (19, False), (1, False), (2, False)]


@pytest.mark.parametrize("groups", [["t.k"], ["t.d", "t.b"], ["t.b", "t.c", "t.k"]])
def test_group_by_numeric_columns_matches_pandas(rng, groups):
    """Real rows hold values in the declared ranges; dummy rows hold anything (0, or what a
    join left there), and must neither split nor join a group."""
    schema, n = NARROW_SCHEMA, 70
    real = pd.DataFrame({"t.k": rng.integers(100, 108, n), "t.b": rng.integers(0, 2, n),
                         "t.d": rng.choice([-2.5, 0.0, 1.125, 3.25], n),
                         "t.c": rng.integers(0, 3, n), "t.x": np.round(rng.uniform(-10, 10, n), 2),
                         "valid": (rng.random(n) < 0.7).astype(int)})
    stored = {name: schema.fixed.encode(real[name]) if name != "t.c"
              else real[name].to_numpy().astype(np.uint64) for name in real.columns[:-1]}
    dummy = real["valid"].to_numpy() == 0
    for name in ("t.k", "t.d", "t.b"):  # out of range on dummy rows
        stored[name][dummy] = rng.integers(-2**40, 2**40, dummy.sum()).view(np.uint64)
    shared = {name: shares_of(values, rng) for name, values in stored.items()}
    valid = shares_of(real["valid"].to_numpy(), rng)
    aggregates = [Aggregate("count"), Aggregate("sum", "t.x")]

    async def program(party, side):
        table = SharedTable({name: pair[side] for name, pair in shared.items()}, valid[side])
        out = await group_by(party, table, groups, [column_type(schema, g) for g in groups],
                             aggregates)
        return [out.valid, *[out.column(g) for g in groups], out.column("count"),
                out.column("sum(t.x)")]

    out_valid, *columns, count, total = reconstruct(run_pair(program, (0,), (1,)))
    keep = out_valid == 1
    got = pd.DataFrame({g: (schema.fixed.decode(c) if g != "t.c" else c.view(np.int64))[keep]
                        for g, c in zip(groups, columns, strict=True)})
    got["count"], got["sum"] = count.view(np.int64)[keep], schema.fixed.decode(total)[keep]
    expected = (real[real["valid"] == 1].groupby(groups)["t.x"].agg(["count", "sum"])
                .reset_index())
    got = got.sort_values(groups).reset_index(drop=True)
    assert got[groups].astype(float).equals(expected[groups].astype(float))
    assert got["count"].tolist() == expected["count"].tolist()
    assert np.allclose(got["sum"], expected["sum"], atol=1e-3)
