"""Query jobs end to end: owners upload, an analyst submits, servers join on shares, the
recipient reveals; compared with pandas on the same plaintext."""

import asyncio
import gc
import io
import threading
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from tests.support.harness import OPEN_POLICY
from tests.support.servers import CUSTOMERS, ORDERS, make_deployment, running, upload_file
from twofold.client import (
    cancel_job,
    failure,
    fetch_result,
    job_status,
    outcome,
    run_job,
    submit_job,
    wait_for_job,
)
from twofold.mpc.accounting import Accounting
from twofold.mpc.link import StopSignal
from twofold.mpc.rpc import ServiceError

pytestmark = pytest.mark.integration  # two servers, in process or not

REGIONS = ["north", "south", "east"]


@pytest.fixture
def deployment(tmp_path):
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    orders = ORDERS + "late,0,999,1.5\n"  # a dangling reference
    (tmp_path / "orders.csv").write_text(orders)
    return make_deployment(tmp_path, owners=("alice", "bob", "carol"))


def frames():
    customers = pd.read_csv(io.StringIO(CUSTOMERS))
    orders = pd.read_csv(io.StringIO(ORDERS + "late,0,999,1.5\n"))
    return customers, orders.merge(customers, left_on="customer_id", right_on="id")


async def upload_and_run(deployment, spec, recipient="carol"):
    await upload_file(deployment, "alice", "customers", pad_to=320, policy=OPEN_POLICY)
    await upload_file(deployment, "bob", "orders", policy=OPEN_POLICY)
    _, result = await run_job(deployment.client(recipient), spec, timeout_s=120)
    return result.data


def run(deployment, spec):
    async def scenario():
        async with running(deployment):
            return await upload_and_run(deployment, spec)
    return asyncio.run(scenario())


def test_output_job_with_a_cross_table_predicate(deployment):
    spec = """
[job]
recipients = ["carol"]
where = "orders.amount > customers.age / 2 and customers.region != 'east'"
[output]
columns = ["orders.order_id", "orders.amount", "customers.age", "customers.region"]
"""
    rows = pd.DataFrame(run(deployment, spec)["rows"])
    _, joined = frames()
    expected = joined[(joined.amount > joined.age / 2) & (joined.region != "east")]
    assert len(rows) == len(expected) > 0
    got = sorted(zip(rows["orders.amount"], rows["customers.age"], rows["customers.region"],
                     strict=True))
    want = sorted(zip(expected.amount, expected.age.astype(float), expected.region, strict=True))
    assert got == want


def test_aggregate_job(deployment):
    spec = """
[job]
recipients = ["carol"]
[aggregate]
group_by = ["customers.region"]
count = true
sum = ["orders.amount"]
mean = ["orders.amount"]
min = ["customers.age"]
max = ["orders.amount"]
"""
    rows = pd.DataFrame(run(deployment, spec)["rows"]).sort_values("customers.region")
    _, joined = frames()
    expected = joined.groupby("region").agg(count=("amount", "size"), total=("amount", "sum"),
                                            mean=("amount", "mean"), low=("age", "min"),
                                            high=("amount", "max")).reset_index()
    assert rows["customers.region"].tolist() == expected["region"].tolist()
    assert rows["count"].tolist() == expected["count"].tolist()
    assert np.allclose(rows["sum(orders.amount)"], expected["total"])
    assert np.allclose(rows["mean(orders.amount)"], expected["mean"])
    assert np.allclose(rows["min(customers.age)"], expected["low"])
    assert np.allclose(rows["max(orders.amount)"], expected["high"])


def test_statistics_job(deployment):
    spec = """
[job]
recipients = ["carol"]
tables = ["orders", "customers"]
[statistics]
columns = ["orders.amount", "customers.age"]
histogram = ["customers.region"]
"""
    values = run(deployment, spec)["values"]
    _, joined = frames()
    amount = values["orders.amount"]
    assert values["count"] == len(joined)
    assert np.isclose(amount["mean"], joined.amount.mean())
    assert np.isclose(amount["std"], joined.amount.std(ddof=0), rtol=1e-4)
    assert np.isclose(values["customers.age"]["min"], joined.age.min())
    assert np.isclose(values["customers.age"]["max"], joined.age.max())
    assert np.isclose(values["customers.age"]["std"], joined.age.std(ddof=0), rtol=1e-4)
    histogram = values["histogram(customers.region)"]
    assert histogram == {r: int((joined.region == r).sum()) for r in REGIONS}


@pytest.mark.parametrize("spec, message", [
    ('[job]\nrecipients = ["carol"]\ntables = ["orders", "nope"]\n'
     '[output]\ncolumns = ["orders.amount"]\n',
     "line 3: unknown table 'nope'"),
    ('[job]\nrecipients = ["carol"]\n[output]\ncolumns = ["orders.amout"]\n',
     "line 4: unknown column 'orders.amout'"),
    ('[job]\nrecipients = ["carol"]\nwhere = "orders.amount > customers.region"\n'
     '[output]\ncolumns = ["orders.amount"]\n',
     "line 3: 'orders.amount > customers.region': cannot compare numeric with categorical"),
    ('[job]\nrecipients = ["carol"]\n[aggregate]\nsum = ["customers.region"]\n',
     "line 4: 'customers.region' is categorical, not numeric"),
    ('[job]\nrecipients = ["mallory"]\n[output]\ncolumns = ["orders.amount"]\n',
     "line 2: recipient 'mallory' has no registered key"),
    ('[job]\nrecipients = ["carol"]\ntables = ["customers"]\n'
     '[output]\ncolumns = ["orders.amount"]\n',
     "line 5: column 'orders.amount': table 'orders' is not in this job's join"),
    ('[job]\nrecipients = ["carol"]\n[output]\ncolumns = ["orders.amount"]\n'
     '[statistics]\ncolumns = []\n',
     "exactly one of"),
    # |income| up to 1e6: its squares wrapped the ring (the check allowed up to 2^44)
    ('[job]\nrecipients = ["carol"]\n[statistics]\ncolumns = ["customers.income"]\n',
     "line 4: the sum of squares of customers.income needs |value| below 2^15 at 16 "
     "fractional bits; its declared range reaches 1e+06"),
])
def test_bad_specs_are_refused_before_any_work(deployment, spec, message):
    async def scenario():
        async with running(deployment) as servers:
            await upload_file(deployment, "alice", "customers")
            await upload_file(deployment, "bob", "orders")
            with pytest.raises(ServiceError, match=message.replace("(", r"\(")):
                await submit_job(deployment.client("alice"), spec)
            return [len(s.jobs.states) for s in servers]

    assert asyncio.run(scenario()) == [0, 0]


def test_jobs_over_tables_not_uploaded_are_refused(deployment):
    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "customers")
            spec = '[job]\nrecipients = ["carol"]\n[output]\ncolumns = ["orders.amount"]\n'
            with pytest.raises(ServiceError, match="orders not uploaded"):
                await submit_job(deployment.client("alice"), spec)

    asyncio.run(scenario())


def test_only_recipients_fetch_outputs(deployment):
    spec = ('[job]\nrecipients = ["carol"]\ntables = ["customers"]\n'
            '[output]\ncolumns = ["customers.age"]\n')

    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "customers", policy=OPEN_POLICY)
            job = await submit_job(deployment.client("alice"), spec)
            await wait_for_job(deployment.client("carol"), job)
            with pytest.raises(ServiceError, match="not a recipient"):
                await fetch_result(deployment.client("alice"), job)
            return (await fetch_result(deployment.client("carol"), job)).data

    rows = asyncio.run(scenario())["rows"]
    assert sorted(rows["customers.age"]) == sorted(float(20 + i % 50) for i in range(1, 301))


def test_statistics_with_differential_privacy(deployment):
    spec = """
[job]
recipients = ["carol"]
tables = ["orders", "customers"]
[statistics]
columns = ["orders.amount"]
histogram = ["customers.region"]
noise = { epsilon = 1.0, delta = 1e-6, tau = 3 }
"""
    result = run(deployment, spec)
    values, ledger = result["values"], result["dp_ledger"]
    _, joined = frames()
    sigmas = ledger["sigmas"]
    assert ledger["tau"] == 3 and sigmas["count"] < sigmas["sum(orders.amount)"]
    assert "min" not in values["orders.amount"]
    # each server adds noise of that deviation: the total is far inside 8 sigma * sqrt(2)
    def close(got, want, name):
        return abs(got - want) < 8 * sigmas[name] * 2 ** 0.5 + 1
    assert close(values["count"], len(joined), "count")
    assert close(values["orders.amount"]["sum"], joined.amount.sum(), "sum(orders.amount)")
    histogram = values["histogram(customers.region)"]
    assert all(close(histogram[r], (joined.region == r).sum(), "histogram(customers.region)")
               for r in REGIONS)


def test_every_second_of_a_job_is_in_a_named_stage(deployment):
    """On each server the stages' wall seconds add up to the job's (within 5%), from loading
    the shares to storing the output; nothing is left to an unnamed default stage."""
    spec = """
[job]
recipients = ["carol"]
[aggregate]
group_by = ["customers.region"]
sum = ["orders.amount"]
"""

    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "customers", pad_to=320, policy=OPEN_POLICY)
            await upload_file(deployment, "bob", "orders", policy=OPEN_POLICY)
            config = deployment.client("carol")
            job_id = await submit_job(config, spec)
            return await wait_for_job(config, job_id, timeout_s=120)

    for status in asyncio.run(scenario()):
        stages = status["costs"]
        assert {"load", "connect", "agree", "ranges", "sort", "aggregate", "release",
                "close", "store"} <= set(stages) and "default" not in stages
        total = sum(cost["wall_s"] for cost in stages.values())
        assert status["seconds"] > 0 and abs(total - status["seconds"]) <= 0.05 * status["seconds"]


STATISTICS = ('[job]\nrecipients = ["carol"]\ntables = ["customers"]\n'
              '[statistics]\ncolumns = ["customers.age"]\n')


def each_server_alone(config):
    """The client's config for server 0 only and for server 1 only."""
    return [replace(config, servers=config.servers[p:p + 1]) for p in (0, 1)]


def test_a_job_server_1_receives_too_late_ends_failed_and_nobody_waits_for_it(tmp_path):
    """A submission that reaches server 1 only after server 0 gave up asking for it (server 0
    waits the peer timeout, 5 s here: no job runs) stays queued on server 1; no client waits
    for it."""
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    deployment = make_deployment(tmp_path, owners=("alice", "bob", "carol"), timeout_s=5.0)
    carol = deployment.client("carol")
    only = each_server_alone(carol)

    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "customers", policy=OPEN_POLICY)
            job = await submit_job(only[0], STATISTICS)

            async def given_up():
                while (await job_status(only[0], job))[0]["state"] != "failed":
                    await asyncio.sleep(0.2)

            await asyncio.wait_for(given_up(), 60)
            await submit_job(only[1], STATISTICS, job)
            statuses = await asyncio.wait_for(wait_for_job(carol, job), 10)
            return statuses

    statuses = asyncio.run(scenario())
    assert [s["state"] for s in statuses] == ["failed", "queued"]
    assert "server 1 never received this job" in failure(statuses)
    assert outcome(statuses) == "failed"


def test_a_job_server_0_cannot_start_fails_on_server_1_too(deployment):
    """Server 1 still ends a stale job (its peer restarted) past server 0's patience: server 0
    fails the new job and tells server 1, whose queued copy fails with the reason."""
    carol = deployment.client("carol")

    async def scenario():
        async with running(deployment) as servers:
            await upload_file(deployment, "alice", "customers", policy=OPEN_POLICY)
            servers[1].running["dan", "stale"] = (Accounting(), StopSignal())
            try:
                job = await submit_job(carol, STATISTICS)
                statuses = await asyncio.wait_for(wait_for_job(carol, job), 60)
            finally:
                del servers[1].running["dan", "stale"]
            again = await asyncio.wait_for(run_job(carol, STATISTICS, timeout_s=60), 60)
            return statuses, again

    statuses, (_, result) = asyncio.run(scenario())
    assert [s["state"] for s in statuses] == ["failed", "failed"]
    assert statuses[0]["error"] == "server 1 could not start it: busy"
    assert statuses[1]["error"] == "server 0 could not start it: " + statuses[0]["error"]
    assert result.data["values"]["count"] == 300  # and the next job runs


def test_server_0_does_not_run_a_job_server_1_has_ended(deployment):
    """A job cancelled on server 1 before server 0 received it fails at once on server 0,
    which does not run its side alone until the timeout."""
    carol = deployment.client("carol")
    only = each_server_alone(carol)

    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "customers", policy=OPEN_POLICY)
            job = await submit_job(only[1], STATISTICS)
            await cancel_job(only[1], job)
            await submit_job(only[0], STATISTICS, job)
            return await asyncio.wait_for(wait_for_job(carol, job), 8)

    statuses = asyncio.run(scenario())
    assert [s["state"] for s in statuses] == ["failed", "failed"]
    assert statuses[0]["error"] == ("server 1 could not start it: its copy is failed: "
                                    "cancelled by carol")


def test_a_server_that_cannot_bind_fails_the_test_instead_of_hanging(deployment):
    """Two processes may both find a port free before either binds it; the harness must then
    fail with the server's error, not wait for a server that will never listen."""
    import socket as sockets

    host, port = deployment.configs[0].listen.removeprefix("tcp://").rsplit(":", 1)
    with sockets.socket() as taken:
        taken.bind((host, int(port)))
        taken.listen()

        async def scenario():
            async with running(deployment):
                pass

        with pytest.raises(Exception, match="Address already in use"):
            asyncio.run(asyncio.wait_for(scenario(), 30))
    # and the failed server closed what it had opened: collecting a zmq context that still
    # has open sockets blocks (a later test once hung so, inside the garbage collector)
    collecting = threading.Thread(target=gc.collect, daemon=True)
    collecting.start()
    collecting.join(10)
    assert not collecting.is_alive()
