"""SQL tests' shared pieces: the schemas SQL is translated against, a model description for
ML.PREDICT and ML.EVALUATE, typed specs to compare, results to compare with DuckDB's, and two
servers in a thread of their own (the client's calls make their own event loops)."""

from __future__ import annotations

import ast
import asyncio
import threading
import tomllib
from contextlib import AsyncExitStack, contextmanager

import numpy as np
import pandas as pd

from tests.support.cli import WALKTHROUGH
from tests.support.servers import running
from twofold.bench import tpch
from twofold.owners.schema import Schema, load_schema, parse_schema
from twofold.servers.jobspec import JobSpec

# the walkthrough's model (train.toml), as ML.PREDICT and ML.EVALUATE read it
MODEL1 = {"features": ["customers.age", "customers.region == 'north'",
                       "customers.region == 'south'"], "label": "orders.amount >= 50"}


# the schema of docs/ml.md's training example
EXAMS_SCHEMA = """
[schema]
fact = "exams"
primary_private = "patients"
[tables.exams]
owner = "alice"
primary_key = "id"
foreign_keys = [{ columns = ["patient"], references = "patients" },
                { columns = ["clinic"], references = "clinics" }]
[tables.exams.columns]
id = { type = "key" }
patient = { type = "key" }
clinic = { type = "key" }
label = { type = "boolean" }
split = { type = "categorical", values = ["train", "test"] }
f0 = { type = "decimal", min = 0, max = 30 }
f1 = { type = "decimal", min = 0, max = 5 }
[tables.patients]
owner = "bob"
primary_key = "id"
[tables.patients.columns]
id = { type = "key" }
f3 = { type = "decimal", min = 0, max = 100 }
[tables.clinics]
owner = "alice"
primary_key = "id"
[tables.clinics.columns]
id = { type = "key" }
size = { type = "decimal", min = 0, max = 10 }
kind = { type = "categorical", values = ["public", "private"] }
"""


def walkthrough_schema() -> Schema:
    return load_schema(WALKTHROUGH / "schema.toml")


def tpch_schema() -> Schema:
    """TPC-H's schema (bench/data/tpch.toml) with a few nations."""
    raw = tomllib.loads(tpch.TEMPLATE.read_text())
    raw["tables"]["nation"]["columns"]["n_name"]["values"] = ["ALGERIA", "ARGENTINA", "CHINA"]
    return parse_schema(raw)


def schema_for(sql: str) -> Schema:
    """TPC-H's schema for a query over TPC-H's tables, else the walkthrough's."""
    return tpch_schema() if "l_revenue" in sql or "c_custkey" in sql else walkthrough_schema()


def _canonical(text: str) -> str:
    return ast.unparse(ast.parse(text, mode="eval"))


def typed(spec: JobSpec) -> tuple:
    """What a job spec means, without its text: two specs that run the same job are equal."""
    return (spec.recipients, spec.plan, _canonical(spec.where.text) if spec.where else None,
            spec.section, spec.private_key, tuple(_canonical(e.text) for e in spec.derived),
            spec.nulls)


def assert_same_table(got: pd.DataFrame, expected: pd.DataFrame, ordered: bool) -> None:
    """Equal tables: integers and strings exactly, decimals within fixed-point precision;
    rows in order when the query orders them, else as sets."""
    assert got.shape == expected.shape, (got, expected)
    got, expected = (frame.set_axis(range(frame.shape[1]), axis=1) for frame in (got, expected))
    if not ordered:
        got, expected = (_sorted(frame) for frame in (got, expected))
    for column in range(got.shape[1]):
        mine, theirs = got[column], expected[column]
        if pd.api.types.is_numeric_dtype(theirs) and not pd.api.types.is_bool_dtype(theirs):
            mine, theirs = (np.asarray(c.astype("Float64").to_numpy(na_value=np.nan), float)
                            for c in (mine, theirs))
            assert np.allclose(mine, theirs, rtol=1e-6, atol=0.05, equal_nan=True), (
                column, mine, theirs)
        else:
            assert mine.tolist() == theirs.tolist(), (column, mine, theirs)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    keys = frame.apply(lambda c: c.astype("Float64").round(1)
                       if pd.api.types.is_numeric_dtype(c) else c.astype(str))
    return frame.loc[keys.sort_values(list(keys.columns)).index].reset_index(drop=True)


@contextmanager
def serving(*deployments):
    """The deployments' servers and dealers in one event loop of a thread of their own, so
    that the client (whose calls run event loops of their own) runs in this thread."""
    loop = asyncio.new_event_loop()
    ready, stop = threading.Event(), asyncio.Event()
    failed: list[BaseException] = []

    async def serve():
        async with AsyncExitStack() as stack:
            for deployment in deployments:
                await stack.enter_async_context(running(deployment))
            ready.set()
            await stop.wait()

    def run():
        try:
            loop.run_until_complete(serve())
        except BaseException as error:  # reported in the test's thread
            failed.append(error)
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert ready.wait(300), "the servers did not start"
        if failed:
            raise failed[0]
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(120)
        if not thread.is_alive():
            loop.close()
