"""The sorting join on shares against a plaintext reference."""

import numpy as np
import pandas as pd
import pytest

from tests.support.harness import reconstruct, run_pair, shares_of
from tests.support.joins import (
    random_schema,
    random_tables,
    real_rows,
    reference_join,
    run_on_shares,
    same_rows,
    share_tables,
)
from twofold.mpc.protocols.sort import SortKey
from twofold.owners.keys import KEY_BITS
from twofold.sorting_join.binary import join_binary
from twofold.sorting_join.multiway import run_join
from twofold.sorting_join.plan import PlanError, plan_join
from twofold.sorting_join.table import SharedTable


def joined_columns(plan):
    return [f"{name}.{c}" for name in plan.tables for c in ("id", "x")]


@pytest.mark.parametrize("seed", range(8))
def test_random_fk_acyclic_joins_match_the_reference(seed):
    rng = np.random.default_rng(seed)
    schema = random_schema(rng, int(rng.integers(2, 7)))
    frames = random_tables(rng, schema)
    plan = plan_join(schema)
    columns = joined_columns(plan)

    async def program(party, tables):
        root = await run_join(party, plan, tables, set(columns))
        return [root.valid, *[root.column(c) for c in columns]]

    result = run_on_shares(program, share_tables(schema, frames, rng))
    got = real_rows(schema, result, columns)
    expected = reference_join(schema, frames)
    assert len(got) == len(expected)
    assert same_rows(got, expected[columns])


def test_snowflake_diamond_uses_theta():
    """t0 -> t1 -> t3 and t0 -> t2 -> t3: rows whose two paths reach different t3 rows drop."""
    from twofold.owners.schema import parse_schema
    tables = {}
    for name, refs in {"t0": ["t1", "t2"], "t1": ["t3"], "t2": ["t3"], "t3": []}.items():
        columns = {"id": {"type": "key"}, "x": {"type": "decimal", "min": -10, "max": 10}}
        columns.update({f"fk_{r}": {"type": "key"} for r in refs})
        tables[name] = {"owner": "o", "primary_key": "id", "columns": columns,
                        "foreign_keys": [{"columns": [f"fk_{r}"], "references": r} for r in refs]}
    schema = parse_schema({"schema": {"fact": "t0"}, "tables": tables})
    plan = plan_join(schema)
    assert len(plan.theta) == 1
    frames = {
        "t3": pd.DataFrame({"id": [1, 2], "x": [1.0, 2.0], "_valid": [1, 1]}),
        "t1": pd.DataFrame({"id": [10, 11], "x": [0.0, 0.0], "fk_t3": [1, 2], "_valid": [1, 1]}),
        "t2": pd.DataFrame({"id": [20, 21], "x": [0.0, 0.0], "fk_t3": [1, 2], "_valid": [1, 1]}),
        "t0": pd.DataFrame({"id": [0, 1, 2], "x": [5.0, 6.0, 7.0], "fk_t1": [10, 10, 11],
                            "fk_t2": [20, 21, 21], "_valid": [1, 1, 1]})}
    columns = ["t0.id", "t3.x"]
    rng = np.random.default_rng(0)

    async def program(party, shared):
        root = await run_join(party, plan, shared, set(columns))
        return [root.valid, *[root.column(c) for c in columns]]

    got = real_rows(schema, run_on_shares(program, share_tables(schema, frames, rng)), columns)
    assert sorted(got["t0.id"].tolist()) == [0, 2]
    assert sorted(got["t3.x"].tolist()) == [1.0, 2.0]


@pytest.mark.parametrize("matches", [0, 1, 10_000])
def test_keys_with_many_matches(matches):
    """One dimension row referenced by 0, 1 or ten thousand fact rows, plus noise rows."""
    rng = np.random.default_rng(matches)
    fact_keys = np.concatenate([np.full(matches, 7), rng.integers(100, 200, 50)])
    dim_keys = np.array([7, 8] + list(range(100, 150)))
    dim_payload = rng.integers(-5, 5, len(dim_keys))
    pairs = [shares_of(v, rng) for v in (fact_keys, np.ones(len(fact_keys), np.int64),
                                         dim_keys, dim_payload, np.ones(len(dim_keys), np.int64))]

    async def program(party, fk, fv, dk, dp, dv):
        left = SharedTable({"f.k": fk}, fv)
        right = SharedTable({"d.k": dk, "d.p": dp}, dv)
        out = await join_binary(party, left, "f.k", right, "d.k", ["d.p"])
        return [out.valid, out.column("d.p")]

    valid, payload = reconstruct(run_pair(program, [p[0] for p in pairs], [p[1] for p in pairs],
                                          timeout_s=120))
    lookup = dict(zip(dim_keys.tolist(), dim_payload.tolist(), strict=True))
    assert valid.tolist() == [int(k in lookup) for k in fact_keys.tolist()]
    got = payload.view(np.int64)[valid == 1].tolist()
    assert got == [lookup[k] for k in fact_keys.tolist() if k in lookup]


def test_subset_joins_and_bad_paths():
    rng = np.random.default_rng(5)
    schema = random_schema(rng, 4)
    with pytest.raises(PlanError, match="unknown table 'nope'"):
        plan_join(schema, ["t0", "nope"])
    leaves = [n for n in schema.tables if not schema.table(n).foreign_keys]
    if len(leaves) > 1:
        with pytest.raises(PlanError, match="not joined"):
            plan_join(schema, leaves[:2])
    plan = plan_join(schema, ["t0"])
    assert plan.steps == () and plan.root == "t0"


def test_join_message_sizes_depend_only_on_public_sizes():
    """Two datasets with the same schema and table sizes: each server sends the identical
    sequence of message sizes through a multi-way join, a predicate, a group-by with a
    distinct count and its release (minimum group size, masking, shuffle)."""
    from twofold.mpc.outputs import OutputColumn
    from twofold.servers.release import Thresholds, release_groups
    from twofold.sorting_join.aggregate import Aggregate, group_by
    from twofold.sorting_join.predicate import Expression, column_type

    schema = random_schema(np.random.default_rng(21), 4)
    plan = plan_join(schema)
    predicate = Expression(schema, "t0.x > 0")

    def traces(seed):
        rng = np.random.default_rng(seed)
        frames = random_tables(np.random.default_rng(100), schema)  # sizes from a fixed seed
        for name, frame in frames.items():  # then entirely different contents
            frame["x"] = np.round(rng.uniform(-1000, 1000, len(frame)), 3)
            frame["c"] = rng.integers(0, 3, len(frame))
            frame["_valid"] = rng.integers(0, 2, len(frame))
            for fk in schema.table(name).foreign_keys:
                frame[fk.columns[0]] = rng.integers(0, 10_000, len(frame))

        async def program(party, tables):
            root = await run_join(party, plan, tables, {"t0.x", "t0.c", "t1.id"})
            keep = await predicate.evaluate(party, root.columns)
            out = await group_by(party, SharedTable(root.columns, keep), ["t0.c"],
                                 [column_type(schema, "t0.c")], [Aggregate("count")],
                                 {"t1": SortKey(root.column("t1.id"), KEY_BITS, signed=False)})
            released = await release_groups(
                party, [OutputColumn("t0.c", "categorical"), OutputColumn("count", "count")],
                {name: out.column(name) for name in ("t0.c", "count")}, out.valid,
                Thresholds({"t1": 2}, {"t1": out.column("distinct(t1)")}), ledger=None)
            return released.shares[-1]

        sides = share_tables(schema, frames, rng)
        _, sizes = run_pair(program, (sides[0],), (sides[1],), record_sizes=True, timeout_s=60)
        return sizes

    first, second = traces(1), traces(2)
    assert len(first[0]) > 50 and first == second
