"""An owner takes its table back (two servers in this process): every version goes on both,
the jobs that would read it fail with the reason, it can come back; and an owner may cancel a
job that reads its table."""

import asyncio

import pytest

from tests.support.harness import OPEN_POLICY
from tests.support.servers import CUSTOMERS, ORDERS, make_deployment, running, upload_file
from twofold.client import (
    cancel_job,
    disagreements,
    fetch_audit_logs,
    owner_tables,
    submit_job,
    wait_for_job,
    withdraw_table,
)
from twofold.mpc.accounting import Accounting
from twofold.mpc.link import StopSignal
from twofold.mpc.rpc import ServiceError
from twofold.servers.storage import Storage

pytestmark = pytest.mark.integration  # two servers in this process

STATISTICS = ('[job]\nrecipients = ["carol"]\ntables = ["customers"]\n'
              '[statistics]\ncolumns = ["customers.age"]\n')
JOINED = ('[job]\nrecipients = ["carol"]\ntables = ["orders", "customers"]\n'
          '[statistics]\ncolumns = ["orders.amount"]\n')
WITHDRAWN = "table customers was withdrawn by its owner"


@pytest.fixture
def deployment(tmp_path):
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    (tmp_path / "orders.csv").write_text(ORDERS)
    return make_deployment(tmp_path, owners=("alice", "bob", "carol", "dave"), timeout_s=20.0)


def held(deployment, table: str) -> list[int]:
    """Catalog rows of the table on each server."""
    counts = []
    for config in deployment.configs:
        storage = Storage(config.data_dir)
        counts.append(len(storage.records("WHERE table_name = ?", table)))
        storage.close()
    return counts


def test_withdraw_deletes_every_version_on_both_servers_and_the_table_can_come_back(deployment):
    alice = deployment.client("alice")

    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "customers", policy=OPEN_POLICY)
            await upload_file(deployment, "alice", "customers", policy=OPEN_POLICY, pad_to=320)
            await upload_file(deployment, "bob", "orders", policy=OPEN_POLICY)
            listed = await owner_tables(alice)
            await withdraw_table(alice, "customers")
            await withdraw_table(alice, "customers")  # again, a withdrawal of nothing
            after = await owner_tables(alice)
            logged = [[e.event for e in log if e.kind == "withdraw"]
                      for log in await fetch_audit_logs(alice)]
            folders = [len(list((c.data_dir / "tables").glob("customers/*")))
                       for c in deployment.configs]
            with pytest.raises(ServiceError, match="customers not uploaded to both servers"):
                await submit_job(deployment.client("carol"), STATISTICS)
            with pytest.raises(ServiceError, match="belongs to alice, not bob"):
                await withdraw_table(deployment.client("bob"), "customers")
            orders_after = held(deployment, "orders")
            await upload_file(deployment, "alice", "customers", policy=OPEN_POLICY)
            return listed, after, logged, folders, orders_after, await owner_tables(alice)

    listed, after, logged, folders, orders_after, again = asyncio.run(scenario())
    assert [[(v["rows"], v["live"]) for v in s["versions"]] for s in listed] == [
        [(300, False), (320, True)]] * 2
    assert disagreements(listed) == []
    assert after == [{"versions": [], "withdrawing": {}}] * 2 and folders == [0, 0]
    # one entry per withdrawal on each server, and each withdrawal under one id on both
    assert [[(e["owner"], e["table"]) for e in log] for log in logged] == [
        [("alice", "customers")] * 2] * 2
    assert logged[0] == logged[1] and logged[0][0]["withdrawal"] != logged[0][1]["withdrawal"]
    assert orders_after == [1, 1]  # bob's table is untouched
    assert [[v["rows"] for v in s["versions"]] for s in again] == [[300], [300]]


def test_a_queued_job_on_a_withdrawn_table_fails_with_the_reason(deployment):
    """Server 1 is busy (a job of its own, as in test_jobs), so carol's job stays queued on
    both servers until alice withdraws the table it reads."""
    carol = deployment.client("carol")

    async def scenario():
        async with running(deployment) as servers:
            await upload_file(deployment, "alice", "customers", policy=OPEN_POLICY)
            servers[1].running["dan", "stale"] = (Accounting(), StopSignal())
            try:
                job = await submit_job(carol, STATISTICS)
                await withdraw_table(deployment.client("alice"), "customers")
                statuses = await asyncio.wait_for(wait_for_job(carol, job), 60)
            finally:
                del servers[1].running["dan", "stale"]
            return statuses

    statuses = asyncio.run(scenario())
    assert [(s["state"], s["error"]) for s in statuses] == [("failed", WITHDRAWN)] * 2


def test_a_job_running_on_a_withdrawn_table_is_cancelled(deployment):
    """Jobs run one at a time: of two jobs on customers, the second is queued or running when
    alice withdraws the table, and fails with the reason either way."""
    carol = deployment.client("carol")

    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "customers", policy=OPEN_POLICY)
            await upload_file(deployment, "bob", "orders", policy=OPEN_POLICY)
            first = await submit_job(carol, JOINED)
            second = await submit_job(carol, JOINED)
            await withdraw_table(deployment.client("alice"), "customers")
            return [await asyncio.wait_for(wait_for_job(carol, job), 120)
                    for job in (first, second)]

    first, second = asyncio.run(scenario())
    assert [(s["state"], s["error"]) for s in second] == [("failed", WITHDRAWN)] * 2
    assert {(s["state"], s["error"]) for s in first} <= {("failed", WITHDRAWN), ("done", "")}


def test_an_owner_cancels_a_job_that_reads_its_table(deployment):
    carol = deployment.client("carol")

    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "customers", policy=OPEN_POLICY)
            await upload_file(deployment, "bob", "orders", policy=OPEN_POLICY)
            job = await submit_job(carol, JOINED)
            with pytest.raises(ServiceError, match=f"no job carol/{job} for dave"):
                await cancel_job(deployment.client("dave"), f"carol/{job}")
            await cancel_job(deployment.client("bob"), f"carol/{job}")
            return await asyncio.wait_for(wait_for_job(carol, job), 120)

    statuses = asyncio.run(scenario())
    assert [(s["state"], s["error"]) for s in statuses] == [("failed", "cancelled by bob")] * 2
