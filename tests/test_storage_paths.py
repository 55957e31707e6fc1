"""Every path under a server's data folder stays inside it, whatever ids clients send."""

import asyncio
import os

import numpy as np
import pytest
import zmq.asyncio

from tests.support.servers import SCHEMA, make_deployment, running
from twofold.cli.local_cluster import LocalCluster
from twofold.mpc.rpc import ServiceClient, ServiceError
from twofold.owners.policy import Policy
from twofold.servers.config import ConfigError, load_server_config
from twofold.servers.jobs import JobState, JobStore
from twofold.servers.server import Server
from twofold.servers.storage import (
    PathError,
    Storage,
    UploadRecord,
    check_id,
    check_job_name,
    confined,
)

pytestmark = pytest.mark.integration  # two servers, in process or not

HOSTILE_IDS = ["..", ".", "/tmp/escape", "a/../../b", "a/b", "", "x" * 65, "nul\0byte",
               "-starts-with-dash", "caf\u00e9", "line\nbreak", "..\\windows"]


@pytest.mark.parametrize("value", HOSTILE_IDS + [None, 7, ["a"]])
def test_hostile_ids_are_refused(value):
    with pytest.raises(PathError, match="upload id"):
        check_id("upload id", value)


@pytest.mark.parametrize("value", ["a", "v1", "0" * 64, "2024-01_run", "f" * 32])
def test_ordinary_ids_pass(value):
    assert check_id("upload id", value) == value


def test_a_job_is_named_by_its_id_or_as_submitter_slash_id():
    assert check_job_name("j-1") == (None, "j-1")
    assert check_job_name("carol/j-1") == ("carol", "j-1")
    for value in ["a/b/c", "../j1", "carol/..", "/j1", "carol/", "carol//j1", None]:
        with pytest.raises(PathError):
            check_job_name(value)


@pytest.mark.parametrize("name", ["../evil", "carol/x", "-dash", "caf\u00e9", "a b"])
def test_a_client_name_must_be_a_plain_folder_name(name):
    """A client's jobs are kept in jobs/<its name>/: a server config that names a client
    otherwise is refused in one line."""
    with LocalCluster(timeout_s=10, schema_text=SCHEMA) as cluster:
        config = cluster.folder / "server0.toml"
        config.write_text(config.read_text() + f'"{name}" = "keys/alice.key"\n')
        with pytest.raises(ConfigError, match=r"server0.toml: \[owners\] client name"):
            load_server_config(config)


@pytest.mark.parametrize("parts", [("..",), ("a", ".."), ("/etc",), ("a/b",), ("",), ("x\0",)])
def test_confined_refuses_names_that_leave_the_folder(tmp_path, parts):
    with pytest.raises(PathError):
        confined(tmp_path / "data", *parts)


def test_confined_refuses_a_symlink_out_of_the_folder(tmp_path):
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    (root / "tables").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, root / "tables" / "customers")
    with pytest.raises(PathError, match="leads outside"):
        confined(root, "tables", "customers", "v1")
    assert confined(root, "tables", "orders", "v1") == root / "tables" / "orders" / "v1"


@pytest.fixture
def deployment(tmp_path):
    return make_deployment(tmp_path)


async def call_server(deployment, owner, party, header, arrays=()):
    context = zmq.asyncio.Context()
    address = deployment.addresses()[party]
    client = ServiceClient(context, deployment.owner_keys[owner], address.public_key,
                           address.address, f"server {party}", 5.0)
    try:
        return await client.call(header, arrays)
    finally:
        client.close()
        context.term()


def begin(deployment, table, upload_id, rows=2):
    schema = deployment.schema
    return {"action": "begin", "upload_id": upload_id, "table": table,
            "schema_hash": schema.hash, "rows": rows,
            "columns": schema.table(table).stored_columns, "digest": "d",
            "policy": Policy(recipients=(schema.table(table).owner,)).to_json()}


@pytest.mark.parametrize("upload_id", ["..", "{outside}", "../../x", "."])
def test_a_hostile_upload_id_touches_nothing(deployment, upload_id):
    """Before the fix, '..' staged into the data folder and a second begin removed it, and an
    absolute id wrote wherever it pointed."""
    outside = deployment.folder / "outside"
    upload_id = upload_id.format(outside=outside)

    async def scenario():
        async with running(deployment):
            for _ in range(2):
                with pytest.raises(ServiceError, match="upload id"):
                    await call_server(deployment, "alice", 0, begin(deployment, "customers",
                                                                    upload_id))
            reply, _ = await call_server(deployment, "alice", 0,
                                         {"action": "status", "table": "customers"})
            return reply

    assert asyncio.run(scenario())["current"] is None
    assert (deployment.folder / "data0" / "catalog.sqlite").exists()
    assert not outside.exists()


def test_upload_ids_are_per_owner(deployment):
    """Bob's begin under alice's in-progress id leaves her upload alone (it used to abandon
    it); both complete under the same id. Every column holds 1 and 3 (keys in order), but
    the indicator and the region (3 values), which must hold 1 and 2 to pass the servers'
    check."""
    def held(column):
        return np.array([1, 1 if column == "_valid" else 2 if column == "region" else 3],
                        np.uint64)

    async def send(owner, table, party):
        columns = deployment.schema.table(table).stored_columns
        ones = np.arange(2, dtype=np.uint64) + 1  # server 1's shares; server 0's the rest
        await call_server(deployment, owner, party, {"action": "chunk", "upload_id": "v1",
                                                     "start": 0},
                          [held(c) - ones if party == 0 else ones for c in columns])
        await call_server(deployment, owner, party, {"action": "commit", "upload_id": "v1"})

    async def activate(owner):
        while (await call_server(deployment, owner, 0, {"action": "activate",
                                                        "upload_id": "v1"}))[0]["status"] \
                == "checking":
            await asyncio.sleep(0.05)

    async def scenario():
        async with running(deployment) as servers:
            for party in (0, 1):
                await call_server(deployment, "alice", party, begin(deployment, "customers", "v1"))
                await call_server(deployment, "bob", party, begin(deployment, "orders", "v1"))
            for party in (0, 1):
                await send("alice", "customers", party)
                await send("bob", "orders", party)
            await activate("alice")
            await activate("bob")
            return [(s.storage.current("customers").owner, s.storage.current("orders").owner)
                    for s in servers]

    assert asyncio.run(scenario()) == [("alice", "bob")] * 2
    customers = deployment.stored("customers")
    assert all(values.tolist() == held(name).tolist() for name, values in customers.items())


def test_a_job_folder_without_state_does_not_stop_the_server(deployment):
    """A crash between creating a job's folder and writing its state.json used to make every
    later start fail. Jobs are stored per submitter; a folder of the layout before that
    (jobs/<id>/state.json) is left alone, output and all, and not loaded."""
    data = deployment.configs[0].data_dir
    store = JobStore(data)
    store.add(JobState("done1", "hash", "carol", ["carol"], state="done"), "[job]\n")
    carol = data / "jobs" / "carol"
    (carol / "cut1").mkdir()
    (carol / "cut1" / "spec.toml").write_text("[job]\n")
    (carol / "torn1").mkdir()
    (carol / "torn1" / "state.json").write_text('{"job_id": "torn1", "spe')
    (data / "jobs" / "old1" / "output").mkdir(parents=True)
    (data / "jobs" / "old1" / "state.json").write_text(
        '{"job_id": "old1", "spec_hash": "h", "submitter": "carol", "recipients": []}')
    server = Server(deployment.configs[0])
    assert set(server.jobs.states) == {("carol", "done1")}
    assert server.jobs.states["carol", "done1"].state == "done"
    assert not (carol / "cut1").exists()  # never acknowledged: removed
    assert (carol / "torn1").exists()  # kept for inspection, not loaded
    assert (data / "jobs" / "old1" / "output").exists()
    server.storage.close()


def test_opening_the_store_for_a_job_keeps_uploads_in_progress(tmp_path):
    """Each job opens the store in its own thread; that used to remove the staging folder of
    any upload in progress, whose commit then failed."""
    storage = Storage(tmp_path)
    record = UploadRecord("v1", "customers", "alice", 2, "hash", "digest", ("id", "_valid"))
    staged = storage.stage(record)
    staged.append(0, [np.arange(2, dtype=np.uint64)] * 2)
    Storage(tmp_path).close()  # what a job does
    storage.commit(staged)
    assert storage.lookup("alice", "v1").state == "stored"
    assert storage.load(record)["id"].tolist() == [0, 1]
    storage.remove_leftovers()  # what a server start does: nothing left over here
    assert storage.load(record)["id"].tolist() == [0, 1]
    storage.close()


def test_a_catalog_from_before_the_live_table_keeps_its_current_versions(tmp_path):
    """Such a catalog made the most recently readied upload current; it stays current."""
    import sqlite3

    old = sqlite3.connect(tmp_path / "catalog.sqlite", isolation_level=None)
    old.execute("CREATE TABLE uploads (upload_id TEXT PRIMARY KEY, table_name TEXT, owner TEXT, "
                "rows INTEGER, schema_hash TEXT, digest TEXT, columns TEXT, policy TEXT, "
                "state TEXT, updated REAL)")
    for upload_id, table, state, updated in [("a1", "customers", "ready", 1.0),
                                             ("a2", "customers", "ready", 2.0),
                                             ("a3", "customers", "stored", 3.0),
                                             ("b1", "orders", "ready", 1.5)]:
        old.execute("INSERT INTO uploads VALUES (?, ?, 'alice', 1, 'h', 'd', '[]', '{}', ?, ?)",
                    (upload_id, table, state, updated))
    old.close()
    storage = Storage(tmp_path)
    assert storage.current("customers").upload_id == "a2"
    assert storage.current("orders").upload_id == "b1"
    storage.make_live(storage.lookup("alice", "a1"))
    assert storage.current("customers").upload_id == "a1"
    storage.close()


def test_a_folder_left_by_a_failed_commit_does_not_block_the_retry(tmp_path):
    """A commit that moved its folder and then failed (no catalog row) left the folder in
    place; renaming the retry's staging folder onto it failed until a restart."""
    storage = Storage(tmp_path)
    record = UploadRecord("v1", "customers", "alice", 2, "hash", "digest", ("id", "_valid"))
    left = tmp_path / "tables" / "customers" / "v1"
    left.mkdir(parents=True)
    (left / "id.u64").write_bytes(b"\0" * 24)
    staged = storage.stage(record)
    staged.append(0, [np.arange(2, dtype=np.uint64)] * 2)
    storage.commit(staged)
    assert storage.load(record)["id"].tolist() == [0, 1]
    storage.close()
