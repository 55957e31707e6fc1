"""The signed, hash-chained audit logs: what each server logs, what each client sees, what
`twofold audit verify`, `twofold owner audit` and `twofold job receipt` find, tampering
included (every two-server test also ends with the check that the logs agree:
tests/support/servers.running)."""

import asyncio
import json
import os
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from tests.support.audit import log_path, rewrite_lines, stored_logs
from tests.support.cli import twofold, upload_customers
from tests.support.harness import OPEN_POLICY
from tests.support.servers import CUSTOMERS, ORDERS, SCHEMA, make_deployment, running, upload_file
from twofold.audit import audited, table_jobs
from twofold.cli.local_cluster import LocalCluster
from twofold.cli.main import app
from twofold.client import fetch_audit_logs, fetch_result, run_job
from twofold.mpc.audit import AuditError, check_view, compare, decode_view
from twofold.mpc.signing import load_signing_key, load_verify_key, signature_holds
from twofold.servers.audit import Audit
from twofold.servers.config import ConfigError, load_server_config
from twofold.servers.storage import UploadRecord

AGGREGATE = """
[job]
recipients = ["carol"]
tables = ["orders", "customers"]
[aggregate]
group_by = ["customers.region"]
sum = ["orders.amount"]
noise = { epsilon = 0.5, delta = 1e-6, tau = 3 }
"""


def record(rows: int) -> UploadRecord:
    return UploadRecord("u1", "customers", "alice", rows, "schema", "digest", ("id",))


def two_logs(tmp_path, rows=(5, 5)):
    """Two servers' logs of the same three events, written by the audit log itself."""
    keys = [Ed25519PrivateKey.generate() for _ in (0, 1)]
    for party in (0, 1):
        folder = tmp_path / f"data{party}"
        folder.mkdir()
        audit = Audit(folder, keys[party])
        audit.upload(record(rows[party]), {"id": [party, 2, 3]})
        audit.fetch("carol", "carol/j1")
        audit.withdraw("alice", "customers", "w1")
        audit.close()
    paths = [log_path(tmp_path / f"data{p}") for p in (0, 1)]
    return paths, tuple(key.public_key() for key in keys)


def problems(paths, keys) -> list[str]:
    return audited([decode_view(p.read_bytes()) for p in paths], keys).problems


def test_two_honest_logs_verify_and_agree(tmp_path):
    paths, keys = two_logs(tmp_path)
    assert problems(paths, keys) == []


def test_a_field_both_servers_know_that_differs_is_named(tmp_path):
    paths, keys = two_logs(tmp_path, rows=(5, 6))
    assert problems(paths, keys) == [
        "server 0 entry 0 and server 1 entry 0 (upload alice/u1) differ in field rows"]


@pytest.mark.parametrize("tamper, named", [
    (lambda lines: [lines[0].replace(b'"rows":5', b'"rows":50'), *lines[1:]],
     ["server 1 entry 0: signature does not verify",
      "server 1 entry 1: does not follow entry 0 (an entry changed, removed or reordered)",
      "server 0 entry 0 and server 1 entry 0 (upload alice/u1) differ in field rows"]),
    (lambda lines: [lines[0], lines[2]],
     ["server 1 entry 1: missing (removed from the log)"]),
    (lambda lines: [lines[0], lines[2], lines[1]],
     ["server 1 entry 1: out of order (it comes after entry 2)"]),
    (lambda lines: [lines[0], lines[1].replace(b'"signature":"', b'"signature":"00'),
                    lines[2]],
     ["server 1 entry 1: signature does not verify"]),
], ids=["changed", "removed", "reordered", "signature broken"])
def test_a_tampered_log_is_detected_and_the_entry_named(tmp_path, tamper, named):
    paths, keys = two_logs(tmp_path)
    rewrite_lines(paths[1], tamper)
    assert problems(paths, keys) == named


def test_a_changed_entry_a_client_cannot_see_breaks_the_chain_after_it(tmp_path):
    """A stub's hash is the server's word, but the next entry's signed link to it is not."""
    paths, keys = two_logs(tmp_path)
    rewrite_lines(paths[0], lambda lines: [lines[0].replace(b'"rows":5', b'"rows":4'),
                                           *lines[1:]])
    view = decode_view(paths[0].read_bytes())
    as_stranger = [view[0].stub(), *view[1:]]
    assert check_view(as_stranger, keys[0], 0) == [
        "server 0 entry 1: does not follow entry 0 (an entry changed, removed or reordered)"]


def test_one_sided_fetches_are_not_divergences(tmp_path):
    paths, keys = two_logs(tmp_path)
    rewrite_lines(paths[1], lambda lines: [lines[0], lines[2]])
    views = [decode_view(p.read_bytes()) for p in paths]
    assert compare(views) == []  # a client may fetch from one server only


def test_a_log_whose_last_entry_does_not_parse_stops_the_server(tmp_path):
    """A line cut short by a crash is dropped; a whole line that is not an entry is not the
    server's to mend."""
    paths, _ = two_logs(tmp_path)
    with open(paths[0], "ab") as log:
        log.write(b"{}\n")
    with pytest.raises(AuditError, match="the last entry does not parse"):
        Audit(paths[0].parent, Ed25519PrivateKey.generate())


def test_keys_generate_writes_a_signing_pair_whose_secret_is_private(tmp_path):
    result = CliRunner().invoke(app, ["keys", "generate", "server0", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    secret, public = tmp_path / "server0.sign_secret", tmp_path / "server0.sign"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    signature = load_signing_key(secret).sign(b"entry")
    assert signature_holds(load_verify_key(public), signature, b"entry")


def test_configs_without_their_audit_keys_are_named(tmp_path):
    """A server needs its signing key to start; a client needs the verify keys only to check
    logs, and is told which one it lacks."""
    with LocalCluster(schema_text=SCHEMA, owners=("alice",)) as cluster:
        server = cluster.folder / "server0.toml"
        server.write_text(server.read_text().replace('signing_key = "keys/server0.sign_secret"\n',
                                                     ""))
        with pytest.raises(ConfigError, match=r"server0.toml: \[server\] needs 'signing_key'"):
            load_server_config(server)
        client = cluster.owner_config("alice")
        client.write_text(client.read_text().replace('verify_key = "keys/server0.sign"\n', ""))
        run = twofold("audit", "verify", "--config", client)
        assert run.returncode == 1
        assert run.stderr == ("twofold: the config names no verify_key for server 0: its "
                              "[[servers]] entry needs the server's NAME.sign\n")


@pytest.mark.integration
def test_each_client_sees_its_own_entries_and_stubs_of_the_rest(tmp_path):
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    (tmp_path / "orders.csv").write_text(ORDERS)
    deployment = make_deployment(tmp_path, owners=("alice", "bob", "carol", "dan"))

    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "customers", policy=OPEN_POLICY)
            await upload_file(deployment, "bob", "orders", policy=OPEN_POLICY)
            job, _ = await run_job(deployment.client("carol"), AGGREGATE, job_id="j1",
                                   timeout_s=120)
            await fetch_result(deployment.client("carol"), job)
            return {name: await fetch_audit_logs(deployment.client(name))
                    for name in ("alice", "carol", "dan")}

    views = asyncio.run(scenario())
    keys = tuple(k.public_key() for k in deployment.signing_keys)
    for name, view in views.items():
        assert audited(view, keys).problems == [], name
    kinds = {name: [e.kind for e in view[0] if not e.is_stub] for name, view in views.items()}
    # alice: her upload, not bob's; every entry of a job that read her table
    assert kinds["alice"] == ["upload", "submit", "start", "spend", "release", "fetch", "fetch"]
    assert kinds["carol"] == ["submit", "start", "spend", "release", "fetch", "fetch"]
    assert kinds["dan"] == []
    assert len(views["dan"][0]) == len(stored_logs(deployment.configs)[0])  # as stubs
    job = table_jobs(audited(views["alice"], keys), "customers")[0]
    assert job["job"] == "carol/j1" and job["submitter"] == "carol"
    charge = next(e for e in views["alice"][0] if e.kind == "submit").event["charge"]
    assert job["epsilon"] == pytest.approx(charge["epsilon"]) and charge["epsilon"] > 0
    assert {"column": "region", "role": "group", "function": ""} in job["columns"]
    assert job["released"] and job["fetched_by"] == ["carol"]


@pytest.mark.integration
def test_the_log_survives_a_restart_and_its_chain_continues(tmp_path):
    """Entries written before a restart stay, the next one links to the last, and a last line
    a crash cut short (never acknowledged) is dropped."""
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    deployment = make_deployment(tmp_path)

    async def upload(upload_id):
        async with running(deployment):
            await upload_file(deployment, "alice", "customers", policy=OPEN_POLICY,
                              upload_id=upload_id)

    asyncio.run(upload("v1"))
    with open(log_path(deployment.configs[1].data_dir), "ab") as log:
        log.write(b'{"seq": 1, "prev": "cut sho')
    asyncio.run(upload("v2"))
    for view in stored_logs(deployment.configs):
        assert [(e.seq, e.kind, e.event["upload_id"]) for e in view] == [
            (0, "upload", "v1"), (1, "upload", "v2")]
        assert view[1].prev == view[0].hash


@pytest.mark.integration
@pytest.mark.slow
def test_audit_commands_through_the_cli(tmp_path):
    with LocalCluster(timeout_s=30, schema_text=SCHEMA,
                      owners=("alice", "bob", "carol")) as cluster:
        cluster.start_all()
        upload_customers(cluster, tmp_path)
        spec = tmp_path / "job.toml"
        spec.write_text('[job]\nrecipients = ["carol"]\ntables = ["customers"]\n'
                        'where = "customers.age >= 60"\n'
                        '[output]\ncolumns = ["customers.id", "customers.region"]\n')
        carol, alice = cluster.owner_config("carol"), cluster.owner_config("alice")
        submitted = twofold("job", "submit", spec, "--config", carol, "--id", "j1", "--wait")
        assert submitted.returncode == 0, submitted.stderr
        assert twofold("reveal", "j1", "--config", carol).returncode == 0

        verified = twofold("audit", "verify", "--config", carol)
        assert verified.returncode == 0, verified.stderr
        # alice's upload (not carol's to see), the job's submit, start, release and fetch
        assert verified.stdout.splitlines()[0] == "server 0: 5 entries, 4 about you"
        assert "the servers agree" in verified.stdout

        owner = twofold("owner", "audit", "customers", "--config", alice)
        assert owner.returncode == 0, owner.stderr
        lines = owner.stdout.splitlines()
        assert lines[0].startswith("job carol/j1: rows (rows, level 4), submitted ")
        assert lines[0].endswith(" by carol for carol")
        assert lines[1] == ("  columns: age (filter), id (row output), region (row output)")
        assert "; released, fetched by carol" in lines[2] and "read version" in lines[2]

        receipt = twofold("job", "receipt", "j1", "--config", carol)
        assert receipt.returncode == 0, receipt.stderr
        assert receipt.stdout.startswith("server 0: job carol/j1 (spec ")
        assert "ran on customers version" in receipt.stdout
        assert "are the ones it logged" in receipt.stdout
        statements = json.loads(twofold("job", "receipt", "j1", "--config", carol,
                                        "--json").stdout)
        assert [e["kind"] for e in statements[1]["entries"]][:4] == [
            "submit", "start", "release", "fetch"]
        refused = twofold("job", "receipt", "j1", "--config", alice)
        assert refused.returncode == 1 and "no job" in refused.stderr

        log = log_path(cluster.folder / "data1")
        release = next(i for i, line in enumerate(log.read_bytes().split(b"\n"))
                       if b'"kind":"release"' in line)
        original = rewrite_lines(log, lambda lines: [
            line.replace(b'"output_digest":"', b'"output_digest":"0') if i == release
            else line for i, line in enumerate(lines)])
        changed = twofold("job", "receipt", "j1", "--config", carol)
        assert changed.returncode == 1
        assert f"twofold: server 1 entry {release}: signature does not verify" in changed.stderr
        assert "are not the ones it logged for job carol/j1" in changed.stderr
        log.write_bytes(original)

        start = release - 1  # the job's start, then its release: entries 2 and 3
        for tamper, named in [
            (lambda lines: [*lines[:release], lines[release].replace(
                b'"output":"rows"', b'"output":"model"'), *lines[release + 1:]],
             [f"server 1 entry {release}: signature does not verify",
              f"server 1 entry {release + 1}: does not follow entry {release} (an entry "
              "changed, removed or reordered)",
              f"server 0 entry {release} and server 1 entry {release} (release for job "
              "carol/j1) differ in field output"]),
            (lambda lines: lines[:start] + lines[start + 1:],
             [f"server 1 entry {start}: missing (removed from the log)",
              "server 1 has no start for job carol/j1"]),
            (lambda lines: [*lines[:start], lines[release], lines[start], *lines[release + 1:]],
             [f"server 1 entry {start}: out of order (it comes after entry {release})"]),
            (lambda lines: [*lines[:release], lines[release].replace(b'"signature":"',
                                                                     b'"signature":"ff'),
                            *lines[release + 1:]],
             [f"server 1 entry {release}: signature does not verify"]),
        ]:
            rewrite_lines(log, tamper)
            found = twofold("audit", "verify", "--config", carol)
            assert found.returncode == 1 and "Traceback" not in found.stderr
            assert found.stderr.splitlines() == [f"twofold: {line}" for line in named]
            log.write_bytes(original)
        assert twofold("audit", "verify", "--config", carol).returncode == 0
