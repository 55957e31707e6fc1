"""A server's durable store of uploaded shares: column files plus a SQLite catalog.

Layout under the data directory:
    catalog.sqlite                    one row per upload (WAL, synchronous=FULL)
    staging/<owner>/<upload id>/      columns being received
    tables/<table>/<upload id>/<column>.u64   raw little-endian uint64 shares
An upload is written to staging, fsynced, renamed into tables/ (and the folder fsynced), and
only then recorded in the catalog. A crash at any point leaves either a complete, recorded
upload or leftovers without a record, which the next start removes: a table is never half there.

Upload ids are chosen by owners, so they are namespaced per owner (the catalog's key is
(owner, upload id)) and checked against ID_PATTERN; every path is built by `confined`, which
proves it stays inside the data directory. A table has one owner, so tables/<table>/<upload id>
is already per owner.

States: "stored" (held durably here), "ready" (the peer server confirmed it holds the same
upload id, table, row count, schema hash and content digest, and both servers' check of its
values passed: usable), "rejected" (the two servers got different metadata: never used, files
removed), "invalid" (the check found values outside the schema: never used, files removed).
Of a table's ready uploads, the one named in the `live` table is the version jobs read:
activating an upload (again) makes it live, so re-uploading earlier content brings that
content back.

Withdrawal (servers/withdrawal.py): a row in `withdrawn` marks a table its owner is taking
back. The mark is written, with the live pointer removed, in one transaction before anything
is deleted; a marked table has no live version, takes no upload and is never made live. Then
its folder tables/<table>/ goes, then its catalog rows; a crash in between leaves the mark,
and the next start finishes the deletion. The mark is lifted once both servers have deleted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from twofold.mpc.errors import TwofoldError
from twofold.mpc.files import fsync_dir
from twofold.mpc.ring import U64
from twofold.mpc.shares import Additive

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class WithdrawnError(TwofoldError, ValueError):
    """A table marked withdrawn: no upload, no activation, no job until the mark is lifted."""


class PathError(TwofoldError, ValueError):
    """A name that would not stay a single folder inside the data directory."""


def check_id(kind: str, value) -> str:
    """An upload or job id, or a client name: 1 to 64 ASCII letters, digits, '-' or '_',
    starting with a letter or digit (so never '.', '..', absolute, or containing a
    separator)."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise PathError(f"{kind} {str(value)[:80]!r} is not 1 to 64 letters, digits, '-' or "
                        "'_' starting with a letter or digit")
    return value


def check_job_name(value) -> tuple[str | None, str]:
    """A job as a client names it: its id, or "submitter/id" (a job's full identity, since
    ids are per submitter); returns (the submitter or None, the id), each part checked."""
    if isinstance(value, str) and value.count("/") == 1:
        submitter, job_id = value.split("/")
        return check_id("submitter", submitter), check_id("job id", job_id)
    return None, check_id("job id", value)


def confined(root: Path, *parts: str) -> Path:
    """root/part/...: each part one plain name, and the resolved path (symlinks followed)
    inside the resolved root."""
    for part in parts:
        if (not isinstance(part, str) or part in ("", ".", "..") or "\0" in part
                or "/" in part or os.sep in part):
            raise PathError(f"{str(part)[:80]!r} is not a plain file name")
    path = root.joinpath(*parts)
    if not path.resolve().is_relative_to(root.resolve()):
        raise PathError(f"{path} leads outside {root}")
    return path


@dataclass(frozen=True)
class UploadRecord:
    upload_id: str
    table_name: str
    owner: str
    rows: int
    schema_hash: str
    digest: str
    columns: tuple[str, ...]
    policy: str = "{}"  # the owner's policy, canonical JSON (owners/policy.py)
    state: str = "stored"

    def same_content(self, other: UploadRecord) -> bool:
        keep = ("upload_id", "table_name", "owner", "rows", "schema_hash", "digest", "columns",
                "policy")
        return all(getattr(self, k) == getattr(other, k) for k in keep)

    def as_message(self) -> dict:
        return {**asdict(self), "columns": list(self.columns)}

    @classmethod
    def from_message(cls, message) -> UploadRecord:
        """A record sent by the peer server, every field checked."""
        fields = {"upload_id": str, "table_name": str, "owner": str, "rows": int,
                  "schema_hash": str, "digest": str, "columns": list, "policy": str,
                  "state": str}
        if not isinstance(message, dict) or set(message) != set(fields):
            raise ValueError("an upload record needs exactly the fields "
                             f"{', '.join(fields)}")
        for name, kind in fields.items():
            if not isinstance(message[name], kind) or isinstance(message[name], bool):
                raise ValueError(f"upload record field {name!r} must be a {kind.__name__}")
        if not all(isinstance(column, str) for column in message["columns"]):
            raise ValueError("upload record columns must be strings")
        return cls(**{**message, "columns": tuple(message["columns"])})



class StagedUpload:
    """Columns of one upload as they arrive, appended in row order."""

    def __init__(self, folder: Path, record: UploadRecord):
        self.folder = folder
        self.record = record
        self.received = 0
        folder.mkdir(parents=True, exist_ok=True)
        self._files = {name: open(confined(folder, f"{name}.u64"), "wb")
                       for name in record.columns}

    def append(self, start, arrays: list[np.ndarray]) -> None:
        """Every array is checked before any is written, so a refused chunk leaves no trace."""
        if start != self.received:
            raise ValueError(f"chunk starts at row {start}, expected {self.received}")
        if len(arrays) != len(self._files) or any(a.dtype != U64 or a.ndim != 1
                                                  for a in arrays):
            raise ValueError(f"a chunk needs {len(self._files)} one-dimensional uint64 arrays")
        if len({len(a) for a in arrays}) > 1:
            raise ValueError("a chunk's arrays must be equally long")
        if self.received + len(arrays[0]) > self.record.rows:
            raise ValueError(f"more than the announced {self.record.rows} rows")
        for array, handle in zip(arrays, self._files.values(), strict=True):
            handle.write(np.ascontiguousarray(array).data.cast("B"))
        self.received += len(arrays[0])

    def close_durably(self) -> None:
        for handle in self._files.values():
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()

    def abandon(self) -> None:
        for handle in self._files.values():
            handle.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class Storage:
    def __init__(self, data_dir: Path):
        self.root = Path(data_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.root / "catalog.sqlite", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS uploads (upload_id TEXT, table_name TEXT, "
            "owner TEXT, rows INTEGER, schema_hash TEXT, digest TEXT, columns TEXT, "
            "policy TEXT, state TEXT, updated REAL, PRIMARY KEY (owner, upload_id))")
        self.db.execute("CREATE TABLE IF NOT EXISTS live (table_name TEXT PRIMARY KEY, "
                        "owner TEXT, upload_id TEXT)")
        self.db.execute("CREATE TABLE IF NOT EXISTS withdrawn (table_name TEXT PRIMARY KEY, "
                        "owner TEXT, withdrawal TEXT)")
        # catalogs from before the live table: the most recently readied upload is live
        self.db.execute(
            "INSERT OR IGNORE INTO live SELECT table_name, owner, upload_id FROM uploads "
            "WHERE state = 'ready' AND updated = (SELECT MAX(updated) FROM uploads AS newer "
            "WHERE newer.table_name = uploads.table_name AND newer.state = 'ready') "
            "AND table_name NOT IN (SELECT table_name FROM withdrawn)")

    def remove_leftovers(self) -> None:
        """At server start (no upload in progress): staging folders, the versions of tables
        marked withdrawn (a withdrawal cut short) and unrecorded tables."""
        shutil.rmtree(self.root / "staging", ignore_errors=True)
        for table_name in self.withdrawing():
            self.remove_files(table_name)
            self.forget_versions(table_name)
        known = {(r.table_name, r.upload_id) for r in self.records()}
        for folder in (self.root / "tables").glob("*/*"):
            if (folder.parent.name, folder.name) not in known:
                shutil.rmtree(folder, ignore_errors=True)

    def records(self, where: str = "", *args) -> list[UploadRecord]:
        rows = self.db.execute(
            "SELECT upload_id, table_name, owner, rows, schema_hash, digest, columns, policy, "
            f"state FROM uploads {where} ORDER BY updated", args).fetchall()
        return [UploadRecord(r[0], r[1], r[2], r[3], r[4], r[5], tuple(json.loads(r[6])), r[7],
                             r[8]) for r in rows]

    def lookup(self, owner: str, upload_id: str) -> UploadRecord | None:
        found = self.records("WHERE owner = ? AND upload_id = ?", owner, upload_id)
        return found[0] if found else None

    def stage(self, record: UploadRecord) -> StagedUpload:
        return StagedUpload(confined(self.root, "staging", record.owner,
                                     check_id("upload id", record.upload_id)), record)

    def commit(self, staged: StagedUpload) -> UploadRecord:
        """Make a fully received upload durable, then record it as stored."""
        record = staged.record
        self.refuse_withdrawn(record.table_name)
        if staged.received != record.rows:
            raise ValueError(f"received {staged.received} of {record.rows} rows")
        staged.close_durably()
        target = self._folder(record)
        target.parent.mkdir(parents=True, exist_ok=True)
        # begin found no catalog row for this upload: a folder here is left by a commit that
        # failed after its move, and would block this one until a restart
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staged.folder, target)
        fsync_dir(target.parent)
        self.db.execute("INSERT INTO uploads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (record.upload_id, record.table_name, record.owner, record.rows,
                         record.schema_hash, record.digest, json.dumps(list(record.columns)),
                         record.policy, "stored", time.time()))
        return record

    def reject(self, record: UploadRecord, state: str = "rejected") -> None:
        """Never usable, files removed: the servers' copies differ ("rejected"), or their
        check found values outside the schema ("invalid", servers/check_queue.py)."""
        self._set_state(record, state)
        shutil.rmtree(self._folder(record), ignore_errors=True)

    def make_live(self, record: UploadRecord) -> bool:
        """Mark the upload ready and make it its table's live version; returns whether it
        already was live."""
        live = self.current(record.table_name)
        was_live = live is not None and (live.owner, live.upload_id) == (record.owner,
                                                                          record.upload_id)
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.refuse_withdrawn(record.table_name)  # in the transaction: no race with a mark
            self._set_state(record, "ready")
            self.db.execute("INSERT OR REPLACE INTO live VALUES (?, ?, ?)",
                            (record.table_name, record.owner, record.upload_id))
        return was_live

    def _set_state(self, record: UploadRecord, state: str) -> None:
        self.db.execute("UPDATE uploads SET state = ?, updated = ? WHERE owner = ? AND "
                        "upload_id = ?", (state, time.time(), record.owner, record.upload_id))

    def current(self, table_name: str) -> UploadRecord | None:
        """The table's live upload: the version jobs use."""
        found = self.records("WHERE state = 'ready' AND (owner, upload_id) IN (SELECT owner, "
                             "upload_id FROM live WHERE table_name = ?) AND table_name NOT IN "
                             "(SELECT table_name FROM withdrawn)", table_name)
        return found[0] if found else None

    def live(self, table_names) -> tuple[dict[str, UploadRecord], list[str]]:
        """The live upload of each of these tables that has one, and the tables without."""
        current = {name: self.current(name) for name in table_names}
        return ({name: record for name, record in current.items() if record is not None},
                [name for name, record in current.items() if record is None])

    def usage(self, owner: str) -> tuple[int, int]:
        """The rows and bytes (of shares on this server) of every version an owner holds."""
        rows, size = self.db.execute(
            "SELECT COALESCE(SUM(rows), 0), COALESCE(SUM(rows * json_array_length(columns)), 0)"
            " * 8 FROM uploads WHERE owner = ? AND state != 'rejected'", (owner,)).fetchone()
        return rows, size

    def versions(self, owner: str) -> list[dict]:
        """Every version of the owner's tables held here, oldest first, with when it was last
        stored, readied or refused and whether it is its table's live one."""
        rows = self.db.execute(
            "SELECT uploads.table_name, uploads.upload_id, rows, state, updated, "
            "live.upload_id IS NOT NULL FROM uploads LEFT JOIN live ON live.owner = "
            "uploads.owner AND live.upload_id = uploads.upload_id WHERE uploads.owner = ? "
            "ORDER BY updated", (owner,)).fetchall()
        return [{"table": t, "upload_id": u, "rows": n, "state": s, "updated": at,
                 "live": bool(live)} for t, u, n, s, at, live in rows]

    # ---- withdrawal: mark, remove files, forget versions, lift -------------------------------

    def withdrawing(self, owner: str | None = None) -> dict[str, str]:
        """The tables marked withdrawn (of one owner, or all), with their withdrawal ids."""
        rows = self.db.execute("SELECT table_name, withdrawal FROM withdrawn WHERE ? IS NULL OR "
                               "owner = ? ORDER BY table_name", (owner, owner)).fetchall()
        return dict(rows)

    def refuse_withdrawn(self, table_name: str) -> None:
        if self.db.execute("SELECT 1 FROM withdrawn WHERE table_name = ?",
                           (table_name,)).fetchone():
            raise WithdrawnError(f"table {table_name} is being withdrawn by its owner; run "
                                 f"`twofold owner withdraw {table_name}` again to finish, "
                                 "then upload")

    def mark_withdrawn(self, table_name: str, owner: str, withdrawal: str) -> str:
        """Durably: the table has no live version and takes no upload until lift_withdrawal.
        Returns the withdrawal's id: this one, or that of the withdrawal whose mark is
        already there (a retry)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT OR IGNORE INTO withdrawn VALUES (?, ?, ?)",
                            (table_name, owner, withdrawal))
            self.db.execute("DELETE FROM live WHERE table_name = ?", (table_name,))
            (marked,) = self.db.execute("SELECT withdrawal FROM withdrawn WHERE table_name = ?",
                                        (table_name,)).fetchone()
        return marked

    def remove_files(self, table_name: str) -> None:
        """Every version's shares of a marked table."""
        tables = confined(self.root, "tables")
        shutil.rmtree(confined(tables, table_name), ignore_errors=True)
        if tables.exists():
            fsync_dir(tables)

    def forget_versions(self, table_name: str) -> None:
        """Every catalog row of a marked table (its files are gone)."""
        self.db.execute("DELETE FROM uploads WHERE table_name = ?", (table_name,))

    def lift_withdrawal(self, table_name: str) -> None:
        self.db.execute("DELETE FROM withdrawn WHERE table_name = ?", (table_name,))

    def load(self, record: UploadRecord) -> dict[str, Additive]:
        """This server's shares of an upload, by column."""
        folder = self._folder(record)
        return {name: Additive(np.fromfile(confined(folder, f"{name}.u64"), dtype=U64))
                for name in record.columns}

    def _folder(self, record: UploadRecord) -> Path:
        return confined(self.root, "tables", record.table_name,
                        check_id("upload id", record.upload_id))

    def close(self) -> None:
        self.db.close()
