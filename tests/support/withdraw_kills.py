"""kill -9 of one server at a chosen point of a withdrawal, restart, retry: the trial behind
tests/test_withdraw_kills.py.

A trial: alice's `customers` is live on both servers; server `party` is restarted as
tests/support/crashing_server.py, which kills itself at `point` while alice runs `twofold owner
withdraw customers`; it is restarted normally and both stores are inspected (no job may be able
to read the table), alice withdraws again, both stores are inspected once more (nothing left on
either), alice uploads the table again (a withdrawn table can come back), and `twofold audit
verify` checks that the two servers' logs agree (one withdraw entry each, retry or not).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import SCHEMA
from tests.support.upload_kills import owner_upload, write_customers
from twofold.cli.local_cluster import LocalCluster
from twofold.servers.storage import Storage

WITHDRAW_POINTS = ("withdraw", "mark", "files", "rows", "lift")


@dataclass(frozen=True)
class Held:
    """What one server holds of customers."""

    live: str | None  # the live upload id
    versions: int  # catalog rows
    folders: int  # version folders on disk
    marked: bool  # being withdrawn

    @property
    def empty(self) -> bool:
        return self.live is None and not self.versions and not self.folders and not self.marked


def held(cluster: LocalCluster) -> tuple[Held, Held]:
    views = []
    for party in (0, 1):
        root = cluster.folder / f"data{party}"
        storage = Storage(root)
        try:
            live = storage.current("customers")
            views.append(Held(live.upload_id if live else None,
                              len(storage.records("WHERE table_name = ?", "customers")),
                              len(list((root / "tables").glob("customers/*"))),
                              "customers" in storage.withdrawing()))
        finally:
            storage.close()
    return views[0], views[1]


def usable(views: tuple[Held, Held]) -> bool:
    """Whether a job could read the table: live on both, the same version, marked on neither
    (servers/jobs.py checks the live version on each server, and both agree on it)."""
    first, second = views
    return (first.live is not None and first.live == second.live
            and not first.marked and not second.marked)


def alice(cluster: LocalCluster, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "twofold.cli.main", *command,
         "--config", str(cluster.owner_config("alice"))],
        capture_output=True, text=True, timeout=300)


def withdraw(cluster: LocalCluster) -> subprocess.CompletedProcess:
    return alice(cluster, "owner", "withdraw", "customers")


@dataclass
class Trial:
    server_died: bool
    first_exit: int
    before: tuple[Held, Held]  # after the restart, before the retry
    retry: subprocess.CompletedProcess
    after: tuple[Held, Held]
    upload_again_exit: int
    again: tuple[Held, Held]
    audit: subprocess.CompletedProcess  # twofold audit verify, as alice


def run_trial(party: int, point: str, folder: Path) -> Trial:
    with LocalCluster(timeout_s=3, schema_text=SCHEMA, owners=("alice",)) as cluster:
        data = folder / "customers.csv"
        write_customers(data, 200, offset=0)
        cluster.start_server(0)
        cluster.start_server(1)
        if owner_upload(cluster, data) != 0:
            raise RuntimeError("the upload before the withdrawal failed")
        cluster.kill_server(party)
        cluster.start_server(party, ("tests.support.crashing_server",), "--crash-at", point)
        first_exit = withdraw(cluster).returncode
        died = cluster.servers[party].poll() is not None
        cluster.kill_server(party)
        cluster.start_server(party)
        before = held(cluster)
        retry = withdraw(cluster)
        after = held(cluster)
        upload_again_exit = owner_upload(cluster, data)
        return Trial(died, first_exit, before, retry, after, upload_again_exit, held(cluster),
                     alice(cluster, "audit", "verify"))
