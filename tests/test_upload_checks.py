"""The servers' check of an upload's values on shares (servers/upload_checks.py,
servers/check_queue.py): a modified owner client's invalid values are refused by both
servers, nothing is stored and the previous version stays live; honest tables pass; one bit
is opened whatever the data."""

import asyncio
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.support.harness import OPEN_POLICY, keypair
from tests.support.servers import CUSTOMERS, make_deployment, running, upload_file
from tests.support.upload_checks import CHECKED_SCHEMA, checked_on_shares, honest, write_tables
from twofold.client import run_job
from twofold.mpc.rpc import ServiceError
from twofold.owners.prepare import PreparedTable
from twofold.owners.schema import INDICATOR, Schema, load_schema
from twofold.owners.upload import upload
from twofold.servers import upload_checks
from twofold.servers.storage import Storage

TOP = 1 << 63


@pytest.fixture
def folder(tmp_path):
    write_tables(tmp_path)
    (tmp_path / "schema.toml").write_text(CHECKED_SCHEMA)
    return tmp_path


@pytest.fixture
def schema(folder):
    return load_schema(folder / "schema.toml")


def code(schema: Schema, value: float) -> int:
    return int(schema.fixed.encode([value]).view(np.int64)[0])


def tampered(prepared: PreparedTable, changes) -> PreparedTable:
    """A copy whose cells are overwritten after encoding, before sharing: what a modified
    client sends. changes(columns, real, padding) edits the columns in place; real and padding
    are the row numbers of each kind."""
    columns = {name: values.copy() for name, values in prepared.columns.items()}
    valid = columns[INDICATOR] == 1
    changes(columns, np.flatnonzero(valid), np.flatnonzero(~valid))
    return dataclasses.replace(prepared, columns=columns)


def _set(column: str, value, row=lambda real, padding: real[0]):
    """An edit: column[row] = value (a ring word; negative values wrap)."""
    def change(columns, real, padding):
        columns[column][row(real, padding)] = np.uint64(value % (1 << 64))
    return change


def _swap_first_rows(columns, real, padding):
    for values in columns.values():
        values[[0, 1]] = values[[1, 0]]


def _duplicate_key(columns, real, padding):
    columns["id"][real[1]] = columns["id"][real[0]]


def _missing_cell_with_a_value(columns, real, padding):
    missing = np.flatnonzero(columns["_null_income"] == 1)
    columns["income"][missing[0]] = columns["income"][real[0]]


# name -> (table, pad_to, edit given the schema)
INVALID = {
    "over max": ("people", 50, lambda s: _set("age", code(s, 120) + 1)),
    "under min": ("people", 50, lambda s: _set("age", code(s, 18) - 1)),
    "far below min (wraps the ring)": ("people", 50, lambda s: _set("income", -TOP)),
    "nullable value over max": ("people", 50, lambda s: _set("income", code(s, 1000) + 1)),
    "categorical code outside the vocabulary": ("people", 50, lambda s: _set("region", 3)),
    "null flag 2": ("people", 50, lambda s: _set("_null_income", 2)),
    "indicator 2": ("people", 50, lambda s: _set(INDICATOR, 2)),
    "nonzero padding cell": ("people", 50,
                             lambda s: _set("member", code(s, 1), lambda r, p: p[0])),
    "null flag in a padding row": ("people", 50,
                                   lambda s: _set("_null_region", 1, lambda r, p: p[-1])),
    "a value in a missing cell": ("people", 50, lambda s: _missing_cell_with_a_value),
    "key above its width": ("people", None, lambda s: _set("id", 1 << 10, lambda r, p: r[-1])),
    "padding key inside the real range": ("people", 50,
                                          lambda s: _set("id", 1000, lambda r, p: p[0])),
    "duplicate primary key": ("people", None, lambda s: _duplicate_key),
    "rows out of key order": ("people", None, lambda s: _swap_first_rows),
    "key part above its width": ("visits", 45, lambda s: _set("day", 1 << 12)),
    "foreign key above its width": ("visits", 45, lambda s: _set("person", 1 << 10)),
    "foreign key in a padding row": ("visits", 45,
                                     lambda s: _set("person", 3, lambda r, p: p[0])),
    "hashed key part at 2^63": ("visits", 45, lambda s: _set("site", TOP)),
    "composite key at 2^63": ("visits", None, lambda s: _set("_key_site_day", TOP + 5,
                                                             lambda r, p: r[-1])),
    "decimal over max": ("visits", None, lambda s: _set("minutes", code(s, 600) + 1)),
}
VALID = [("people", 50), ("people", None), ("visits", 45), ("visits", None)]


@pytest.mark.parametrize("table, pad_to", VALID)
def test_honest_tables_pass(folder, schema, table, pad_to):
    """Extremes exactly at min and max, missing cells, sizes no power of two, padding."""
    assert checked_on_shares(schema, honest(folder, schema, table, pad_to))


@pytest.mark.parametrize("case", sorted(INVALID))
def test_each_kind_of_invalid_value_is_found(folder, schema, case):
    table, pad_to, edit = INVALID[case]
    prepared = tampered(honest(folder, schema, table, pad_to), edit(schema))
    assert not checked_on_shares(schema, prepared)


@pytest.mark.parametrize("case", ["over max", "indicator 2", "duplicate primary key",
                                  "foreign key in a padding row"])
def test_with_ot(folder, schema, case):
    table, pad_to, edit = INVALID[case]
    prepared = honest(folder, schema, table, pad_to)
    assert checked_on_shares(schema, prepared, source="ot")
    assert not checked_on_shares(schema, tampered(prepared, edit(schema)), source="ot")


def test_one_bit_is_opened_whatever_the_data(folder, schema, monkeypatch):
    """The check opens exactly one bit, and every message it sends has a size fixed by the
    table's public shape: the same for an honest table and for tables invalid in different
    ways."""
    opened = []
    real_open = upload_checks.open_bit

    async def spy(party, bit):
        opened.append((party.id, bit.shape, bit.dtype))
        return await real_open(party, bit)

    monkeypatch.setattr(upload_checks, "open_bit", spy)
    prepared = honest(folder, schema, "people", 50)
    variants = [prepared] + [tampered(prepared, INVALID[case][2](schema))
                             for case in ("over max", "null flag 2", "nonzero padding cell")]
    verdicts, sizes = zip(*(checked_on_shares(schema, p, record_sizes=True) for p in variants),
                          strict=True)
    assert verdicts == (True, False, False, False)
    assert all(s == sizes[0] for s in sizes)
    assert sorted(opened) == sorted([(p, (1,), np.uint8) for p in (0, 1)] * len(variants))


# ---- two real servers ------------------------------------------------------------------------

def _states(deployment, owner: str, upload_id: str) -> list[str | None]:
    states = []
    for config in deployment.configs:
        storage = Storage(config.data_dir)
        record = storage.lookup(owner, upload_id)
        states.append(None if record is None else record.state)
        storage.close()
    return states


def _refusal_then_unchanged(deployment, folder):
    schema = deployment.schema
    good = honest(folder, schema, "people", 50)
    bad = tampered(good, INVALID["over max"][2](schema))

    async def send(prepared, upload_id):
        return await upload(prepared, schema, deployment.owner_keys["alice"],
                            deployment.addresses(), upload_id=upload_id, timeout_s=30.0)

    async def scenario():
        async with running(deployment):
            await send(good, "v1")
            for _ in range(2):  # a retry is refused the same way
                with pytest.raises(ServiceError, match="the servers found values outside the "
                                   "schema of table people; nothing was stored"):
                    await send(bad, "v2")

    asyncio.run(scenario())
    stored = deployment.stored("people")
    assert all(np.array_equal(stored[name], good.columns[name]) for name in good.columns)
    assert _states(deployment, "alice", "v2") == ["invalid", "invalid"]
    for config in deployment.configs:
        assert not (config.data_dir / "tables" / "people" / "v2").exists()


@pytest.mark.integration
def test_servers_refuse_invalid_values_and_keep_the_live_version(folder):
    _refusal_then_unchanged(make_deployment(folder, CHECKED_SCHEMA, timeout_s=30.0), folder)


@pytest.mark.integration
def test_servers_refuse_invalid_values_with_ot(folder):
    _refusal_then_unchanged(make_deployment(folder, CHECKED_SCHEMA, timeout_s=30.0,
                                            correlations="ot"), folder)


@pytest.mark.integration
def test_an_activation_asked_of_server_1_first_is_checked_too(folder):
    """A client that asks server 1 first (here: the servers listed the other way round, so
    server 1 gets share 0): server 0 runs the check when server 1 asks whether it holds the
    upload, and the version goes live on both."""
    deployment = make_deployment(folder, CHECKED_SCHEMA, timeout_s=30.0)
    prepared = honest(folder, deployment.schema, "visits", 45)

    async def scenario():
        async with running(deployment):
            await upload(prepared, deployment.schema, deployment.owner_keys["bob"],
                         tuple(reversed(deployment.addresses())), upload_id="v1",
                         timeout_s=30.0)

    asyncio.run(scenario())
    assert _states(deployment, "bob", "v1") == ["ready", "ready"]
    stored = deployment.stored("visits")
    assert all(np.array_equal(stored[name], prepared.columns[name]) for name in prepared.columns)


@pytest.mark.integration
@pytest.mark.slow  # server processes
def test_bench_upload_reports_the_check(tmp_path):
    """`twofold bench upload` (the real command, a dealer and two server processes) reports
    the activation with the servers' check, verify_s, within the whole upload's seconds."""
    command = [sys.executable, "-m", "twofold.cli.main", "bench", "upload", "--rows", "300",
               "--repeat", "1", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (report,) = json.loads(done.stdout)["rows"]
    assert 0 < report["verify_s"] < report["seconds"]


@pytest.mark.integration
def test_checks_and_jobs_take_turns(tmp_path):
    """Jobs submitted while new versions are uploaded: each check runs in server 0's
    scheduler between jobs (sessions never overlap), every job reads a whole version, and the
    last upload ends live."""
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    deployment = make_deployment(tmp_path, owners=("alice", "bob"), timeout_s=30.0)
    spec = ('[job]\nrecipients = ["alice"]\ntables = ["customers"]\n'
            '[statistics]\ncolumns = ["customers.age"]\n')

    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "customers", policy=OPEN_POLICY)
            jobs = [run_job(deployment.client("alice"), spec, timeout_s=300) for _ in range(3)]
            return await asyncio.gather(*jobs, new_versions())

    async def new_versions():
        for pad in (400, 500):  # one after the other: the last one ends live
            _, result = await upload_file(deployment, "alice", "customers", pad_to=pad,
                                          policy=OPEN_POLICY, timeout_s=30.0)
        return result

    *jobs, last = asyncio.run(scenario())
    assert all(result.data["values"]["customers.age"]["count"] == 300 for _, result in jobs)
    assert len(deployment.stored("customers")[INDICATOR]) == last.rows == 500


@pytest.mark.integration
def test_a_check_that_cannot_run_is_reported_not_waited_for(folder):
    """The servers pin a key that is not the dealer's, so they never reach it: the check
    fails, the owner hears why within the servers' timeout instead of waiting, and the version
    is stored but not live."""
    deployment = make_deployment(folder, CHECKED_SCHEMA, timeout_s=3.0)
    stranger = keypair().public
    deployment.configs = [dataclasses.replace(config, endpoints=dataclasses.replace(
        config.endpoints, dealer_public=stranger)) for config in deployment.configs]

    async def scenario():
        async with running(deployment):
            with pytest.raises(ServiceError, match="could not check upload v1 .*dealer.*run "
                               "the same upload again"):
                await upload(honest(folder, deployment.schema, "people"), deployment.schema,
                             deployment.owner_keys["alice"], deployment.addresses(),
                             upload_id="v1", timeout_s=30.0)

    asyncio.run(scenario())
    assert _states(deployment, "alice", "v1") == ["stored", "stored"]
    assert deployment.stored("people") is None
