"""kill -9 of one server at a chosen point of an upload, restart, retry: the trial behind
tests/test_upload_kills.py (a few points, in CI) and tools/kill_uploads.py (every point, each
server in turn).

A trial: both servers hold a baseline version of `customers`; server `party` is restarted as
tests/support/crashing_server.py, which kills itself at `point` while the owner uploads new data
through the CLI; it is restarted normally, the servers' stores are inspected, the owner runs
the same upload again, and the stores are inspected once more.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.support.servers import SCHEMA
from twofold.cli.local_cluster import LocalCluster
from twofold.mpc.curve import load_keypair
from twofold.owners.policy import Policy
from twofold.owners.prepare import PreparedTable, prepare
from twofold.owners.schema import load_schema
from twofold.owners.upload import content_digest
from twofold.servers.storage import Storage


@dataclass
class Stores:
    """What both servers hold, reconstructed."""

    live: tuple[str | None, str | None]  # each server's live upload of customers
    mismatched: list[str]  # uploads held by both whose shares do not add up to their data

    def describe(self, baseline: str, new: str) -> str:
        names = {baseline: "baseline", new: "new data", None: "nothing"}
        if self.live[0] == self.live[1]:
            return f"{names[self.live[0]]} live on both"
        return f"{names[self.live[0]]} live on server 0, {names[self.live[1]]} on server 1"


@dataclass
class Trial:
    party: int
    point: str
    server_died: bool
    first_exit: int  # the interrupted upload's exit status
    before: Stores  # after the restart, before the retry
    retry_exit: int
    after: Stores
    baseline_id: str
    new_id: str

    @property
    def passed(self) -> bool:
        """The retry ends with the new data live on both servers, nothing ever mismatched,
        and before the retry every live version was one of the owner's."""
        ids = {self.baseline_id, self.new_id}
        return (self.retry_exit == 0 and not self.before.mismatched
                and not self.after.mismatched and set(self.before.live) <= ids
                and self.after.live == (self.new_id, self.new_id))


def write_customers(path: Path, rows: int, offset: int) -> None:
    path.write_text("id,age,income,member,region\n" + "".join(
        f"{i},{(i + offset) % 90},{i % 1000 / 4},{'no' if i % 2 else 'yes'},"
        f"{['north', 'south', 'east'][(i + offset) % 3]}\n" for i in range(rows)))


def owner_upload(cluster: LocalCluster, data: Path) -> int:
    return subprocess.run(
        [sys.executable, "-m", "twofold.cli.main", "owner", "upload", str(data),
         "--table", "customers", "--schema", str(cluster.folder / "schema.toml"), "--config",
         str(cluster.owner_config("alice"))], capture_output=True, timeout=300).returncode


def inspect_stores(cluster: LocalCluster, expected: dict[str, PreparedTable]) -> Stores:
    stores = [Storage(cluster.folder / f"data{party}") for party in (0, 1)]
    try:
        live = tuple(getattr(s.current("customers"), "upload_id", None) for s in stores)
        held = [{r.upload_id: r for r in s.records() if r.state != "rejected"} for s in stores]
        mismatched = []
        for upload_id in held[0].keys() & held[1].keys():
            shares = [s.load(h[upload_id]) for s, h in zip(stores, held, strict=True)]
            table = expected.get(upload_id)
            if table is None or any(not np.array_equal(shares[0][c] + shares[1][c], values)
                                    for c, values in table.columns.items()):
                mismatched.append(upload_id)
        return Stores(live, mismatched)
    finally:
        for store in stores:
            store.close()


def run_trial(party: int, point: str, rows: int, folder: Path) -> Trial:
    with LocalCluster(timeout_s=3, schema_text=SCHEMA, owners=("alice",)) as cluster:
        schema = load_schema(cluster.folder / "schema.toml")
        keys = load_keypair(cluster.folder / "keys" / "alice.key_secret")
        files = {"baseline": folder / "baseline.csv", "new": folder / "new.csv"}
        write_customers(files["baseline"], 50, offset=1)
        write_customers(files["new"], rows, offset=0)
        tables = {name: prepare(path, schema, "customers") for name, path in files.items()}
        default = Policy(recipients=("alice",))  # the CLI's rules without flags
        ids = {name: content_digest(keys, schema, table, default)[:32]
               for name, table in tables.items()}
        expected = {ids[name]: tables[name] for name in files}
        cluster.start_server(0)
        cluster.start_server(1)
        if owner_upload(cluster, files["baseline"]) != 0:
            raise RuntimeError("the baseline upload failed")
        cluster.kill_server(party)
        cluster.start_server(party, ("tests.support.crashing_server",), "--crash-at", point)
        first_exit = owner_upload(cluster, files["new"])
        died = cluster.servers[party].poll() is not None
        cluster.kill_server(party)
        cluster.start_server(party)
        before = inspect_stores(cluster, expected)
        retry_exit = owner_upload(cluster, files["new"])
        return Trial(party, point, died, first_exit, before, retry_exit,
                     inspect_stores(cluster, expected), ids["baseline"], ids["new"])
