"""Uploads between an owner and two real servers: round trip, authentication, idempotence,
and both servers agreeing before a table is usable."""

import asyncio

import numpy as np
import pytest
import zmq.asyncio

from tests.support.harness import keypair
from tests.support.servers import CUSTOMERS, ORDERS, make_deployment, running, upload_file
from twofold.mpc.rpc import ServiceClient, ServiceError
from twofold.mpc.sharing import split
from twofold.owners.policy import Policy
from twofold.owners.prepare import prepare
from twofold.owners.upload import upload

pytestmark = pytest.mark.integration  # two servers, in process or not


@pytest.fixture
def deployment(tmp_path):
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    (tmp_path / "orders.csv").write_text(ORDERS)
    return make_deployment(tmp_path)


def run(coroutine):
    return asyncio.run(coroutine)


def test_round_trip_of_two_owners_tables(deployment):
    async def scenario():
        async with running(deployment):
            return [await upload_file(deployment, "alice", "customers", pad_to=512),
                    await upload_file(deployment, "bob", "orders")]

    (customers, result), (orders, _) = run(scenario())
    assert result.statuses == ["send", "send"] and result.real_rows == 300 and result.rows == 512
    for prepared in (customers, orders):
        stored = deployment.stored(prepared.table.name)
        assert list(stored) == list(prepared.columns)
        for name, values in prepared.columns.items():
            assert np.array_equal(stored[name], values), name


def test_servers_keep_tables_across_restarts(deployment):
    async def first():
        async with running(deployment):
            await upload_file(deployment, "alice", "customers")

    async def second():
        async with running(deployment) as servers:
            return [s.storage.current("customers") for s in servers]

    run(first())
    records = run(second())
    assert all(r is not None and r.state == "ready" and r.rows == 300 for r in records)


def test_unregistered_key_is_refused_and_nothing_is_stored(deployment):
    async def scenario():
        async with running(deployment):
            with pytest.raises(ServiceError, match="public key"):
                await upload_file(deployment, "alice", "customers", keys=keypair(), timeout_s=1.0)

    run(scenario())
    assert deployment.stored("customers") is None


def test_an_owner_cannot_upload_another_owners_table(deployment):
    async def scenario():
        async with running(deployment):
            with pytest.raises(ServiceError, match="belongs to alice, not bob"):
                await upload_file(deployment, "bob", "customers",
                                  keys=deployment.owner_keys["bob"])

    run(scenario())
    assert deployment.stored("customers") is None


def test_repeating_an_upload_is_a_no_op(deployment):
    async def scenario():
        async with running(deployment) as servers:
            _, first = await upload_file(deployment, "alice", "customers")
            before = [s.storage.records() for s in servers]
            _, again = await upload_file(deployment, "alice", "customers",
                                         upload_id=first.upload_id)
            return first, again, before, [s.storage.records() for s in servers]

    first, again, before, after = run(scenario())
    assert again.statuses == ["exists", "exists"] and again.upload_id == first.upload_id
    assert before == after


def test_same_upload_id_with_other_content_is_refused(deployment):
    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "customers", upload_id="v1")
            (deployment.folder / "customers.csv").write_text(
                CUSTOMERS.replace(",east\n", ",north\n"))
            with pytest.raises(ServiceError, match="already used for other content"):
                await upload_file(deployment, "alice", "customers", upload_id="v1")

    run(scenario())


def test_mismatched_metadata_is_refused_by_both_servers(deployment):
    """A faulty owner tells the servers different row counts under one upload id."""
    schema = deployment.schema
    columns = schema.table("customers").stored_columns
    keys = deployment.owner_keys["alice"]

    async def send(client, rows):
        await client.call({"action": "begin", "upload_id": "u", "table": "customers",
                           "schema_hash": schema.hash, "rows": rows, "columns": columns,
                           "digest": "d", "policy": Policy(recipients=("alice",)).to_json()})
        shares = [split(np.zeros(rows, np.uint64))[0] for _ in columns]
        await client.call({"action": "chunk", "upload_id": "u", "start": 0}, shares)
        await client.call({"action": "commit", "upload_id": "u"})

    async def scenario():
        async with running(deployment):
            context = zmq.asyncio.Context()
            clients = [ServiceClient(context, keys, address.public_key, address.address,
                                     f"server {p}", 5.0)
                       for p, address in enumerate(deployment.addresses())]
            await send(clients[0], 10)
            await send(clients[1], 11)
            for client in clients:
                with pytest.raises(ServiceError, match="different metadata|copies differ"):
                    await client.call({"action": "activate", "upload_id": "u"})
            for client in clients:
                client.close()
            context.term()

    run(scenario())
    assert deployment.stored("customers") is None


def test_a_table_is_not_usable_while_one_server_lacks_it(deployment):
    async def scenario():
        async with running(deployment, which=(0,)):
            with pytest.raises(ServiceError, match="server 1"):
                await upload_file(deployment, "alice", "customers", timeout_s=1.0)

    run(scenario())
    assert deployment.stored("customers") is None


def test_schema_mismatch_is_refused(deployment):
    async def scenario():
        async with running(deployment):
            other = deployment.schema
            object.__setattr__(other, "hash", "0" * 64)
            prepared = prepare(deployment.folder / "customers.csv", other, "customers")
            with pytest.raises(ServiceError, match="schema differs"):
                await upload(prepared, other, deployment.owner_keys["alice"],
                             deployment.addresses(), timeout_s=5.0)

    run(scenario())


def test_a_retry_after_one_server_committed_completes_with_matching_shares(deployment):
    """Server 1 fails its commit; server 0 keeps the upload. The retry sends server 1 the share
    made from the same mask stream, so both shares add up to the owner's data (it used to send a
    share made with a fresh mask: a ready table of garbage)."""
    async def scenario():
        async with running(deployment) as servers:
            commit = servers[1].storage.commit

            def fail_once(staged):
                servers[1].storage.commit = commit
                raise ServiceError("disk full")

            servers[1].storage.commit = fail_once
            with pytest.raises(ServiceError, match="disk full"):
                await upload_file(deployment, "alice", "customers")
            assert [s.storage.current("customers") for s in servers] == [None, None]
            return await upload_file(deployment, "alice", "customers")

    prepared, retry = run(scenario())
    assert retry.statuses == ["exists", "send"]
    stored = deployment.stored("customers")
    for name, values in prepared.columns.items():
        assert np.array_equal(stored[name], values), name


def test_uploading_earlier_content_again_makes_it_live(deployment):
    """v1, then v2, then v1 again: jobs read v1 (they kept reading v2)."""
    original = CUSTOMERS
    changed = CUSTOMERS.replace(",east\n", ",north\n")

    async def upload_text(text):
        (deployment.folder / "customers.csv").write_text(text)
        return await upload_file(deployment, "alice", "customers")

    async def scenario():
        async with running(deployment):
            first, second = await upload_text(original), await upload_text(changed)
            return first, second, await upload_text(original), await upload_text(original)

    (v1, first), (_, second), (_, again), (_, repeat) = run(scenario())
    assert second.upload_id != first.upload_id
    assert again.upload_id == first.upload_id and again.statuses == ["exists", "exists"]
    assert not again.was_live and repeat.was_live
    stored = deployment.stored("customers")
    for name, values in v1.columns.items():
        assert np.array_equal(stored[name], values), name
