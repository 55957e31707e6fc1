"""`twofold owner tables` and `twofold owner withdraw` as an owner runs them (real processes),
and the modes of what the servers write."""

import json
import os
import stat

import pytest

from tests.support.cli import twofold
from tests.support.servers import SCHEMA
from tests.support.upload_kills import write_customers
from twofold.cli.local_cluster import LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # server processes


def upload(cluster, data, *flags):
    run = twofold("owner", "upload", data, "--table", "customers", "--schema",
                  cluster.folder / "schema.toml", "--config", cluster.owner_config("alice"),
                  *flags)
    assert run.returncode == 0, run.stderr


def test_an_owner_lists_its_versions_withdraws_the_table_and_uploads_it_again(tmp_path):
    with LocalCluster(timeout_s=30, schema_text=SCHEMA, owners=("alice", "bob")) as cluster:
        cluster.start_server(0)
        cluster.start_server(1)
        first, second = tmp_path / "first.csv", tmp_path / "second.csv"
        write_customers(first, 40, offset=0)
        write_customers(second, 60, offset=1)
        upload(cluster, first)
        upload(cluster, second)
        config = cluster.owner_config("alice")

        listed = twofold("owner", "tables", "--config", config)
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.strip().splitlines()
        assert len(lines) == 2 and all(line.startswith("customers  ") for line in lines)
        assert "40 rows" in lines[0] and "not live  ready" in lines[0]
        assert "60 rows" in lines[1] and lines[1].endswith("  live  ready")
        report = json.loads(twofold("owner", "tables", "--config", config, "--json").stdout)
        assert report["disagreements"] == []
        assert [len(s["versions"]) for s in report["servers"]] == [2, 2]

        other = twofold("owner", "withdraw", "customers", "--config", cluster.owner_config("bob"))
        assert other.returncode == 1
        assert other.stderr.strip().endswith("table customers belongs to alice, not bob")

        withdrawn = twofold("owner", "withdraw", "customers", "--config", config)
        assert withdrawn.returncode == 0, withdrawn.stderr
        assert withdrawn.stdout.strip() == "customers: every version deleted on both servers"
        listed = twofold("owner", "tables", "--config", config)
        assert listed.stdout.strip() == "no tables on either server"
        for party in (0, 1):
            assert not list((cluster.folder / f"data{party}" / "tables").glob("customers/*"))
        again = twofold("owner", "withdraw", "customers", "--config", config)
        assert again.returncode == 0, again.stderr  # nothing left: a no-op

        upload(cluster, first)
        report = json.loads(twofold("owner", "tables", "--config", config, "--json").stdout)
        assert [[v["rows"] for v in s["versions"]] for s in report["servers"]] == [[40], [40]]


def test_owner_tables_names_where_the_servers_disagree(tmp_path):
    """Server 1 lost a version (a disk restored from a backup, say): the listing says so and
    exits 1."""
    with LocalCluster(timeout_s=30, schema_text=SCHEMA, owners=("alice",)) as cluster:
        cluster.start_server(0)
        cluster.start_server(1)
        data = tmp_path / "customers.csv"
        write_customers(data, 30, offset=0)
        upload(cluster, data)
        cluster.kill_server(1)
        (cluster.folder / "data1" / "catalog.sqlite").unlink()
        for leftover in (cluster.folder / "data1").glob("catalog.sqlite-*"):
            leftover.unlink()
        cluster.start_server(1)
        listed = twofold("owner", "tables", "--config", cluster.owner_config("alice"))
        assert listed.returncode == 1
        assert "the servers disagree:" in listed.stdout
        assert ": server 0 holds 30 rows, ready, live, server 1 nothing" in listed.stdout


def test_servers_write_their_files_for_themselves_alone(tmp_path):
    """Shares, catalogs, ledgers and job folders: files 0600, folders 0700, whatever the
    umask of whoever starts the server."""
    with LocalCluster(timeout_s=30, schema_text=SCHEMA, owners=("alice",)) as cluster:
        cluster.start_server(0)
        cluster.start_server(1)
        data = tmp_path / "customers.csv"
        write_customers(data, 30, offset=0)
        upload(cluster, data)
        budget = twofold("owner", "budget", "customers", "--config",
                         cluster.owner_config("alice"))  # opens each server's ledger
        assert budget.returncode == 0, budget.stderr
        for party in (0, 1):
            root = cluster.folder / f"data{party}"
            paths = [root, *root.rglob("*")]
            assert {"catalog.sqlite", "budget.sqlite"} <= {p.name for p in paths}
            assert any(p.suffix == ".u64" for p in paths) and (root / "jobs").is_dir()
            for path in paths:
                mode = stat.S_IMODE(os.stat(path).st_mode)
                assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
