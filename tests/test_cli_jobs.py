"""The whole flow through the CLI, every party its own process: upload, job, reveal."""

import csv
import io
import json

import pytest

from tests.support.cli import twofold, upload_customers
from tests.support.servers import CUSTOMERS, SCHEMA
from twofold.cli.local_cluster import LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # server processes


def test_upload_submit_and_reveal_through_the_cli(tmp_path):
    with LocalCluster(timeout_s=30, schema_text=SCHEMA,
                      owners=("alice", "bob", "carol")) as cluster:
        cluster.start_dealer()
        cluster.start_server(0)
        cluster.start_server(1)
        upload_customers(cluster, tmp_path)
        spec = tmp_path / "job.toml"
        spec.write_text('[job]\nrecipients = ["carol"]\ntables = ["customers"]\n'
                        'where = "customers.age >= 60"\n'
                        '[output]\ncolumns = ["customers.id", "customers.region"]\n')
        submitted = twofold("job", "submit", spec, "--config", cluster.owner_config("alice"),
                            "--wait", "--json")  # the owner may submit on its own table
        assert submitted.returncode == 0, submitted.stderr
        job = json.loads(submitted.stdout)
        assert job["state"] == "done"
        status = twofold("job", "status", job["job_id"], "--config", cluster.owner_config("carol"))
        assert "server 0: done" in status.stdout and "join" not in status.stderr
        revealed = twofold("reveal", job["job_id"], "--config", cluster.owner_config("carol"))
        assert revealed.returncode == 0, revealed.stderr
        rows = list(csv.DictReader(io.StringIO(revealed.stdout)))
        expected = [i for i in range(1, 301) if 20 + i % 50 >= 60]
        assert sorted(int(r["customers.id"]) for r in rows) == expected
        refused = twofold("reveal", job["job_id"], "--config", cluster.owner_config("bob"))
        assert refused.returncode == 1 and "no job" in refused.stderr
        assert "Traceback" not in refused.stderr
        ids_are_per_submitter(cluster, tmp_path, job["job_id"], status.stdout, revealed.stdout)
        cluster.kill_server(1)  # status used to fail entirely while either server was down
        status = twofold("job", "status", job["job_id"], "--config", cluster.owner_config("carol"))
        lines = status.stdout.splitlines()
        assert status.returncode == 1 and lines[0] == "server 0: done"
        assert lines[1].startswith("server 1: unreachable (server 1 at tcp://")
        assert "Traceback" not in status.stderr


def ids_are_per_submitter(cluster, tmp_path, job_id: str, carols_status: str,
                          alices_rows: str) -> None:
    """alice submitted job_id for carol: alice sees its state, not its costs, which carol
    sees; carol's own job of that id is hers to name by the id, alice's is alice/<id>; bob
    is told there is no such job."""
    alice, bob, carol = (cluster.owner_config(name) for name in ("alice", "bob", "carol"))
    status = twofold("job", "status", job_id, "--config", alice)
    assert status.returncode == 0 and status.stdout.splitlines() == ["server 0: done",
                                                                    "server 1: done"]
    assert " bytes, " in carols_status and "  job: " in carols_status
    status = twofold("job", "status", job_id, "--config", bob)
    assert status.returncode == 1 and f"no job {job_id} for bob" in status.stderr
    spec = tmp_path / "older.toml"
    spec.write_text('[job]\nrecipients = ["carol"]\ntables = ["customers"]\n'
                    'where = "customers.age >= 65"\n[output]\ncolumns = ["customers.id"]\n')
    mine = twofold("job", "submit", spec, "--config", carol, "--id", job_id, "--wait", "--json")
    assert json.loads(mine.stdout) == {"job_id": job_id, "state": "done", "error": ""}
    own = twofold("reveal", job_id, "--config", carol)
    ages = {int(r["customers.id"]): 20 + int(r["customers.id"]) % 50
            for r in csv.DictReader(io.StringIO(own.stdout))}
    assert ages and min(ages.values()) >= 65
    alices = twofold("reveal", f"alice/{job_id}", "--config", carol)
    assert alices.returncode == 0 and alices.stdout == alices_rows


def test_joined_columns_survive_separate_processes(tmp_path):
    """Each server is its own process with its own hash seed: carried columns must line up."""
    from tests.support.servers import ORDERS

    with LocalCluster(timeout_s=30, schema_text=SCHEMA,
                      owners=("alice", "bob", "carol")) as cluster:
        cluster.start_dealer()
        cluster.start_server(0)
        cluster.start_server(1)
        for owner, table, text in (("alice", "customers", CUSTOMERS), ("bob", "orders", ORDERS)):
            data = tmp_path / f"{table}.csv"
            data.write_text(text)
            run = twofold("owner", "upload", data, "--table", table, "--schema",
                          cluster.folder / "schema.toml", "--config", cluster.owner_config(owner),
                          "--recipients", "carol", "--outputs", "rows",
                          "--dimension-columns", "*")
            assert run.returncode == 0, run.stderr
        spec = tmp_path / "job.toml"
        spec.write_text('[job]\nrecipients = ["carol"]\n[output]\ncolumns = ["orders.line", '
                        '"orders.customer_id", "customers.age", "customers.income", '
                        '"customers.member", "customers.region"]\n')
        job = json.loads(twofold("job", "submit", spec, "--config", cluster.owner_config("carol"),
                                 "--wait", "--json").stdout)
        revealed = twofold("reveal", job["job_id"], "--config", cluster.owner_config("carol"))
        rows = list(csv.DictReader(io.StringIO(revealed.stdout)))
        assert len(rows) == 900
        for row in rows:
            i = int(row["orders.customer_id"])
            assert float(row["customers.age"]) == 20 + i % 50
            assert abs(float(row["customers.income"]) - (i * 1.25 - 30)) < 1e-3
            assert float(row["customers.member"]) == (1.0 if i % 3 else 0.0)
            assert row["customers.region"] == ["north", "south", "east"][i % 3]


def test_with_json_a_failed_jobs_reason_is_on_stderr_too(tmp_path):
    """--json puts the outcome on stdout; a failed job's reason also goes where a failing
    command's reason goes. The dealer stops after the upload (whose check needs it), so the
    job cannot get its correlations."""
    with LocalCluster(timeout_s=10, schema_text=SCHEMA,
                      owners=("alice", "bob", "carol")) as cluster:
        cluster.start_server(0)
        cluster.start_server(1)
        upload_customers(cluster, tmp_path)
        cluster.dealer.kill()
        cluster.dealer.wait()
        spec = tmp_path / "job.toml"
        spec.write_text('[job]\nrecipients = ["carol"]\ntables = ["customers"]\n'
                        '[output]\ncolumns = ["customers.id"]\n')
        run = twofold("job", "submit", spec, "--config", cluster.owner_config("carol"),
                      "--wait", "--json")
        job = json.loads(run.stdout)
        assert run.returncode == 1 and job["state"] == "failed" and job["error"], run.stderr
        assert f"twofold: job {job['job_id']} failed: {job['error']}\n" in run.stderr
