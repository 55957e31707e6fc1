"""The release boundary, tried as a malicious recipient: fetch both servers' raw output shares
(the action the client uses), reconstruct everything, and find exactly the declared result,
rows of zeros, and an order that depends on nothing. Inputs hold rows a job's `where`
excludes, padding rows, an order that references no customer, and three orders per customer."""

import asyncio
import io

import numpy as np
import pandas as pd
import pytest

from tests.support.harness import OPEN_POLICY
from tests.support.servers import (
    CUSTOMERS,
    ORDERS,
    make_deployment,
    reconstruct_outputs,
    running,
    upload_file,
)
from twofold.client import fetch_outputs, submit_job, wait_for_job
from twofold.mpc.ring import FixedPoint
from twofold.owners.keys import encode_keys
from twofold.owners.schema import INDICATOR

pytestmark = pytest.mark.integration  # two servers, in process or not

FIXED = FixedPoint()
REGIONS = ["north", "south", "east"]
DANGLING = "late,0,999,1.5\n"
WHERE = "orders.amount > customers.age / 2 and customers.region != 'east'"


def joined() -> pd.DataFrame:
    customers = pd.read_csv(io.StringIO(CUSTOMERS))
    orders = pd.read_csv(io.StringIO(ORDERS + DANGLING))
    frame = orders.merge(customers, left_on="customer_id", right_on="id")
    return frame[(frame.amount > frame.age / 2) & (frame.region != "east")]


def fixed(values) -> list[int]:
    return FIXED.encode(np.asarray(values, float)).view(np.int64).tolist()


def assert_exactly(table: dict[str, np.ndarray], expected: dict[str, list]) -> np.ndarray:
    """The result rows (indicator 1) are exactly the expected ones, as a multiset; every other
    row is zero in every column. Returns the positions of the result rows."""
    indicator = table[INDICATOR]
    assert set(np.unique(indicator)) <= {0, 1}
    assert set(table) == set(expected) | {INDICATOR}
    kept = indicator == 1
    for name, values in table.items():
        assert not values[~kept].any(), f"a row outside the result holds {name} values"
    got = sorted(zip(*(table[name][kept].tolist() for name in expected), strict=True))
    assert got == sorted(zip(*expected.values(), strict=True))
    return np.flatnonzero(kept)


@pytest.fixture
def deployment(tmp_path):
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    (tmp_path / "orders.csv").write_text(ORDERS + DANGLING)
    return make_deployment(tmp_path, owners=("alice", "bob", "carol"))


def run_jobs(deployment, *specs):
    """Upload (customers padded to 320 rows), run each spec, and fetch carol's raw outputs."""
    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "customers", pad_to=320, policy=OPEN_POLICY)
            await upload_file(deployment, "bob", "orders", policy=OPEN_POLICY)
            keys = deployment.client("carol")
            tables = []
            for spec in specs:
                job = await submit_job(deployment.client("alice"), spec)
                statuses = await wait_for_job(keys, job, timeout_s=120)
                assert [s["state"] for s in statuses] == ["done", "done"], statuses
                tables.append(reconstruct_outputs(await fetch_outputs(keys, job)))
            return tables
    return asyncio.run(scenario())


ROWS_SPEC = f"""
[job]
recipients = ["carol"]
where = "{WHERE}"
[output]
columns = ["orders.order_id", "orders.amount", "customers.age", "customers.region"]
"""
GROUPS_SPEC = f"""
[job]
recipients = ["carol"]
where = "{WHERE}"
[aggregate]
group_by = ["customers.region"]
count = true
sum = ["orders.amount"]
min = ["customers.age"]
max = ["orders.amount"]
"""


def expected_rows() -> dict[str, list]:
    frame = joined()
    codes = encode_keys([frame.order_id.to_numpy(dtype=object)]).view(np.int64)
    return {"orders.order_id": codes.tolist(), "orders.amount": fixed(frame.amount),
            "customers.age": fixed(frame.age),
            "customers.region": [REGIONS.index(r) for r in frame.region]}


def expected_groups() -> dict[str, list]:
    groups = joined().groupby("region").agg(count=("amount", "size"), total=("amount", "sum"),
                                            low=("age", "min"), high=("amount", "max"))
    return {"customers.region": [REGIONS.index(r) for r in groups.index],
            "count": groups["count"].tolist(), "sum(orders.amount)": fixed(groups.total),
            "min(customers.age)": fixed(groups.low), "max(orders.amount)": fixed(groups.high)}


def test_rows_and_groups_hold_the_result_and_zeros_only(deployment):
    rows, again, groups = run_jobs(deployment, ROWS_SPEC, ROWS_SPEC, GROUPS_SPEC)
    assert len(rows[INDICATOR]) == 901  # the public N: every order row
    first = assert_exactly(rows, expected_rows())
    second = assert_exactly(again, expected_rows())
    # the order depends neither on the input nor on the run: the same job twice puts the
    # result rows in different places (equal by chance with probability below 1e-200)
    assert not np.array_equal(first, second)
    assert len(groups[INDICATOR]) == 901
    assert_exactly(groups, expected_groups())  # two groups, no running values


def test_statistics_store_the_declared_values_only(deployment):
    spec = f"""
[job]
recipients = ["carol"]
where = "{WHERE}"
[statistics]
columns = ["orders.amount"]
histogram = ["customers.region"]
"""
    (stored,) = run_jobs(deployment, spec)
    frame = joined()
    amount = frame.amount.to_numpy()
    assert set(stored) == {"count", "sum(orders.amount)", "sumsq(orders.amount)",
                           "min(orders.amount)", "max(orders.amount)",
                           "histogram(customers.region)"}
    assert stored["count"].tolist() == [len(frame)]
    assert FIXED.decode(stored["sum(orders.amount)"].view(np.uint64))[0] == pytest.approx(
        amount.sum())
    assert stored["min(orders.amount)"].tolist() == fixed([amount.min()])
    assert stored["histogram(customers.region)"].tolist() == [
        int((frame.region == r).sum()) for r in REGIONS]


def test_rows_and_groups_from_server_processes_through_the_cli(tmp_path):
    """The same checks with `twofold server run` processes, uploads and jobs by the CLI, the
    owners' rules given as a policy file and as flags, granting exactly the roles the jobs
    use (with the default minimum group size, 2)."""
    from tests.support.cli import twofold
    from tests.support.servers import SCHEMA
    from twofold.cli.local_cluster import LocalCluster
    from twofold.config import load_client_config

    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    (tmp_path / "orders.csv").write_text(ORDERS + DANGLING)
    (tmp_path / "rules.toml").write_text(
        'recipients = ["carol"]\noutputs = ["rows", "aggregate"]\n'
        'dimension_columns = ["age", "region"]\naggregate_columns = { age = ["min"] }\n')
    owners = ("alice", "bob", "carol")
    with LocalCluster(timeout_s=60, schema_text=SCHEMA, owners=owners) as cluster:
        cluster.start_all()
        schema = cluster.folder / "schema.toml"
        for owner, table, rules in (
                ("alice", "customers", ["--policy", tmp_path / "rules.toml", "--pad-to", 320]),
                ("bob", "orders", ["--recipients", "carol", "--outputs", "rows,aggregate",
                                   "--dimension-columns", "order_id,amount",
                                   "--aggregate-columns", "amount:sum:max"])):
            run = twofold("owner", "upload", tmp_path / f"{table}.csv", "--table", table,
                          "--schema", schema, "--config", cluster.owner_config(owner), *rules)
            assert run.returncode == 0, run.stderr
        carol = load_client_config(cluster.owner_config("carol"))
        tables = []
        for spec in (ROWS_SPEC, GROUPS_SPEC):
            (tmp_path / "job.toml").write_text(spec)
            run = twofold("job", "submit", tmp_path / "job.toml", "--config",
                          cluster.owner_config("carol"), "--wait")
            assert run.returncode == 0 and "done" in run.stdout, run.stderr
            job = run.stdout.split()[1].rstrip(":")
            tables.append(reconstruct_outputs(asyncio.run(fetch_outputs(carol, job))))
    assert_exactly(tables[0], expected_rows())
    assert_exactly(tables[1], expected_groups())
