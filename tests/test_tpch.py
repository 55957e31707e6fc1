"""TPC-H Q3- and Q5-shaped jobs at SF 0.01 (tpchgen-cli) against DuckDB."""

import asyncio

import duckdb
import numpy as np
import pandas as pd
import pytest

from tests.support.harness import OPEN_POLICY
from tests.support.servers import make_deployment, running
from twofold.bench import tpch
from twofold.client import run_job
from twofold.mpc.prg import Prg
from twofold.owners.prepare import prepare
from twofold.owners.upload import upload

pytestmark = pytest.mark.integration  # two servers, in process or not


@pytest.fixture(scope="module")
def tpch_world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tpch")
    frames = tpch.generate(folder, 0.01)
    return folder, frames


def run_spec(folder, frames, spec, tmp_path):
    deployment = make_deployment(tmp_path, (folder / "schema.toml").read_text(),
                                 owners=("alice", "bob", "carol"))
    schema = deployment.schema

    async def scenario():
        async with running(deployment):
            for name in tpch.COLUMNS:
                owner = schema.table(name).owner
                prepared = prepare(folder / f"{name}.csv", schema, name, dummy_prg=Prg.fresh())
                await upload(prepared, schema, deployment.owner_keys[owner],
                             deployment.addresses(), timeout_s=30, policy=OPEN_POLICY)
            _, result = await run_job(deployment.client("carol"), spec, timeout_s=600)
            return result.data

    return pd.DataFrame(asyncio.run(scenario())["rows"])


def reference(frames, sql):
    connection = duckdb.connect()
    for name, frame in frames.items():
        connection.register(name, frame)
    return connection.execute(sql).df()


def test_q5_shaped_join(tpch_world, tmp_path):
    folder, frames = tpch_world
    got = run_spec(folder, frames, tpch.Q5_SPEC, tmp_path).sort_values("nation.n_name")
    expected = reference(frames, tpch.Q5_SQL).sort_values("n_name")
    assert got["nation.n_name"].tolist() == expected["n_name"].tolist()
    assert np.allclose(got["sum(lineitem.l_revenue)"], expected["revenue"], atol=0.05)


def test_q3_shaped_join(tpch_world, tmp_path):
    folder, frames = tpch_world
    got = run_spec(folder, frames, tpch.Q3_SPEC, tmp_path)
    expected = reference(frames, tpch.Q3_SQL)
    got = got.sort_values("lineitem.l_orderkey").reset_index(drop=True)
    expected = expected.sort_values("l_orderkey").reset_index(drop=True)
    assert len(got) == len(expected) > 0
    assert got["lineitem.l_orderkey"].tolist() == expected["l_orderkey"].tolist()
    assert got["orders.o_orderdate"].tolist() == expected["o_orderdate"].astype(float).tolist()
    assert np.allclose(got["sum(lineitem.l_revenue)"], expected["revenue"], atol=0.05)
