"""Running servers make COTs while idle (`idle_cots`, OT mode), through real `twofold server
run` processes: stores filled at start and again after jobs, used by jobs first, a session cut
short by an arriving job, and one process at a time per store."""

import csv
import io
import json
import time
from contextlib import contextmanager

import pytest

from tests.support.cli import twofold, upload_customers
from tests.support.servers import SCHEMA
from twofold.cli.local_cluster import LocalCluster, ProcessError
from twofold.mpc.ot.pool import CotPool
from twofold.mpc.ot.store import CotStore, exclusive

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # server processes

BATCH = CotPool.batch_size()
LARGE_TARGET = 256 * BATCH  # several seconds of preprocessing: a job or a kill comes midway
JOB = ('[job]\nrecipients = ["carol"]\ntables = ["customers"]\nwhere = "customers.age >= 60"\n'
       '[output]\ncolumns = ["customers.id"]\n')
EXPECTED = [i for i in range(1, 301) if 20 + i % 50 >= 60]


def stores(cluster):
    return [CotStore(cluster.folder / f"data{party}" / "correlations") for party in (0, 1)]


def filled(held, target: int) -> bool:
    """Both servers hold the same batches, at least `target` COTs per direction (a direction
    left a batch ahead by an interrupted session may hold one more)."""
    ids = held[0].ids()
    return ids == held[1].ids() and all(held[0].held(ids, d) >= target for d in (0, 1))


def wait_until(condition, what: str, timeout_s: float = 120.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def upload_and_run_job(cluster, tmp_path) -> str:
    upload_customers(cluster, tmp_path)
    return run_job(cluster, tmp_path)


def run_job(cluster, tmp_path) -> str:
    spec = tmp_path / "job.toml"
    spec.write_text(JOB)
    submitted = twofold("job", "submit", spec, "--config", cluster.owner_config("alice"),
                        "--wait", "--json")
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["state"] == "done", job
    revealed = twofold("reveal", job["job_id"], "--config", cluster.owner_config("carol"))
    assert revealed.returncode == 0, revealed.stderr
    rows = list(csv.DictReader(io.StringIO(revealed.stdout)))
    assert sorted(int(r["customers.id"]) for r in rows) == EXPECTED
    return job["job_id"]


def test_idle_servers_fill_their_stores_jobs_use_them_first_and_they_refill(tmp_path):
    with LocalCluster(timeout_s=30, schema_text=SCHEMA, owners=("alice", "carol"),
                      correlations="ot", idle_cots=2 * BATCH) as cluster:
        cluster.start_all()
        held = stores(cluster)

        def full():  # 2 batches in each of 2 directions, the same on both servers
            return len(held[0].ids()) == 4 and held[0].ids() == held[1].ids()

        log = cluster.folder / "server0.log"
        sessions = lambda: log.read_text().count("COTs per direction while idle")  # noqa: E731
        wait_until(lambda: sessions() == 1 and full(), "the stores to fill at start")
        before = set(held[0].ids())
        upload_and_run_job(cluster, tmp_path)
        wait_until(lambda: sessions() == 2 and full(), "the stores to refill")
        # the job took stored batches first (deleted before use); the refill made new ones
        assert len(before - set(held[0].ids())) >= 2
        time.sleep(1)
        assert sessions() == 2  # full stores: no session until the next job


@contextmanager
def preprocessing_midway(tmp_path, timeout_s: float):
    """Two servers holding alice's table, restarted with a store target of several seconds'
    work, once they are midway (the upload comes first, so that a job can follow at once)."""
    with LocalCluster(timeout_s=timeout_s, schema_text=SCHEMA, owners=("alice", "carol"),
                      correlations="ot") as cluster:
        cluster.start_all()
        upload_customers(cluster, tmp_path)
        for party in (0, 1):
            cluster.kill_server(party)
            config = cluster.folder / f"server{party}.toml"
            config.write_text(config.read_text().replace(
                "[owners]", f"idle_cots = {LARGE_TARGET}\n[owners]"))
        cluster.start_all()
        held = stores(cluster)
        batches = 2 * LARGE_TARGET // BATCH
        wait_until(lambda: 0 < min(len(store.ids()) for store in held) < batches,
                   "idle preprocessing to start")
        yield cluster, held


def test_a_job_stops_idle_preprocessing_and_runs_at_once(tmp_path):
    with preprocessing_midway(tmp_path, timeout_s=30) as (cluster, held):
        run_job(cluster, tmp_path)
        logs = [(cluster.folder / f"server{party}.log").read_text() for party in (0, 1)]
        assert "idle preprocessing stopped for a job" in logs[0], logs[0][-2000:]
        assert ("idle preprocessing stopped for a job" in logs[1]
                or "idle preprocessing ended by server 0" in logs[1]), logs[1][-2000:]
        assert "idle preprocessing failed" not in logs[0] + logs[1]
        # after the job the servers go on; a batch only one server finished is never used
        wait_until(lambda: filled(held, LARGE_TARGET), "the stores to fill after the job")


def test_a_server_killed_during_idle_preprocessing_leaves_consistent_stores(tmp_path):
    timeout_s = 120  # server 0's session waits this long for the killed server, unless a job comes
    with preprocessing_midway(tmp_path, timeout_s) as (cluster, held):
        cluster.kill_server(1)  # no goodbye
        cluster.start_server(1)
        started = time.monotonic()
        run_job(cluster, tmp_path)  # batches only one server holds are discarded
        assert time.monotonic() - started < timeout_s / 2  # the job did not wait out the session
        log = (cluster.folder / "server0.log").read_text()
        assert "idle preprocessing stopped for a job" in log, log[-2000:]
        wait_until(lambda: filled(held, LARGE_TARGET), "the stores to fill after the job")


def test_one_process_at_a_time_per_store(tmp_path):
    with LocalCluster(timeout_s=10, schema_text=SCHEMA, correlations="ot") as cluster:
        cluster.start_server(0)
        run = twofold("server", "preprocess", "--config", cluster.folder / "server0.toml",
                      "--cots", BATCH, timeout=60)
        assert run.returncode == 1 and "Traceback" not in run.stderr
        assert len(run.stderr.strip().splitlines()) == 1
        assert "in use by another process" in run.stderr and "idle_cots" in run.stderr
        cluster.kill_server(0)
        with exclusive(cluster.folder / "data0" / "correlations"), pytest.raises(
                ProcessError, match="in use by another process"):  # while preprocessing by hand
            cluster.start_server(0)
        assert stores(cluster)[0].ids() == []


def test_idle_cots_is_checked_in_the_config(tmp_path):
    with LocalCluster(timeout_s=10, schema_text=SCHEMA, correlations="dealer") as cluster:
        config = cluster.folder / "server0.toml"
        for line, error in (("idle_cots = 1000", "needs correlations = \"ot\""),
                            ("idle_cots = -1", "whole number from 0"),
                            ("idle_cots = true", "whole number from 0")):
            config.write_text(config.read_text().replace("[owners]", f"{line}\n[owners]"))
            run = twofold("server", "run", "--config", config, timeout=60)
            assert run.returncode == 1 and "Traceback" not in run.stderr
            assert "server0.toml" in run.stderr and "idle_cots" in run.stderr
            assert error in run.stderr
            config.write_text(config.read_text().replace(f"{line}\n", ""))
