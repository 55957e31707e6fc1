"""The whole flow through the CLI, every party its own process: upload, job, reveal."""

import csv
import io
import json
import subprocess
import sys

from servers.local_cluster import LocalCluster
from tests.servers_harness import SCHEMA
from tests.test_upload import CUSTOMERS


def twofold(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def test_upload_submit_and_reveal_through_the_cli(tmp_path):
    with LocalCluster(timeout_s=30, schema_text=SCHEMA, owners=("alice", "bob", "carol")) as cluster:
        cluster.start_dealer()
        cluster.start_server(0)
        cluster.start_server(1)
        data = tmp_path / "customers.csv"
        data.write_text(CUSTOMERS)
        upload = twofold("owner", "upload", data, "--table", "customers", "--schema",
                         cluster.folder / "schema.toml", "--config", cluster.owner_config("alice"))
        assert upload.returncode == 0, upload.stderr
        spec = tmp_path / "job.toml"
        spec.write_text('[job]\nrecipients = ["carol"]\ntables = ["customers"]\n'
                        'where = "customers.age >= 60"\n'
                        '[output]\ncolumns = ["customers.id", "customers.region"]\n')
        submitted = twofold("job", "submit", spec, "--config", cluster.owner_config("alice"),
                            "--wait", "--json")
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
