"""A server's durable store of uploaded shares: column files plus a SQLite catalog.

Layout under the data directory:
    catalog.sqlite            one row per upload (WAL, synchronous=FULL)
    staging/<upload id>/      columns being received
    tables/<table>/<upload id>/<column>.u64   raw little-endian uint64 shares
An upload is written to staging, fsynced, renamed into tables/ (and the folder fsynced), and
only then recorded in the catalog. A crash at any point leaves either a complete, recorded
upload or leftovers without a record, which the next start removes: a table is never half there.

States: "stored" (held durably here), "ready" (the peer server confirmed it holds the same
upload id, table, row count, schema hash and content digest: usable), "rejected" (the two
servers got different metadata: never used, files removed).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

U64 = np.uint64


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

    def same_content(self, other: "UploadRecord") -> bool:
        keep = ("upload_id", "table_name", "owner", "rows", "schema_hash", "digest", "columns",
                "policy")
        return all(getattr(self, k) == getattr(other, k) for k in keep)

    def as_message(self) -> dict:
        return {**asdict(self), "columns": list(self.columns)}

    @classmethod
    def from_message(cls, message: dict) -> "UploadRecord":
        return cls(**{**message, "columns": tuple(message["columns"])})


def _fsync_dir(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


class StagedUpload:
    """Columns of one upload as they arrive, appended in row order."""

    def __init__(self, folder: Path, record: UploadRecord):
        self.folder = folder
        self.record = record
        self.received = 0
        folder.mkdir(parents=True, exist_ok=True)
        self._files = {name: open(folder / f"{name}.u64", "wb") for name in record.columns}

    def append(self, start: int, arrays: list[np.ndarray]) -> None:
        if start != self.received:
            raise ValueError(f"chunk starts at row {start}, expected {self.received}")
        if len(arrays) != len(self._files) or len({len(a) for a in arrays}) > 1:
            raise ValueError("a chunk needs one equally long array per column")
        if self.received + len(arrays[0]) > self.record.rows:
            raise ValueError(f"more than the announced {self.record.rows} rows")
        for array, handle in zip(arrays, self._files.values()):
            if array.dtype != U64:
                raise ValueError("shares must be uint64")
            handle.write(memoryview(np.ascontiguousarray(array)).cast("B"))
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
            "CREATE TABLE IF NOT EXISTS uploads (upload_id TEXT PRIMARY KEY, table_name TEXT, "
            "owner TEXT, rows INTEGER, schema_hash TEXT, digest TEXT, columns TEXT, "
            "policy TEXT, state TEXT, updated REAL)")
        self._remove_leftovers()

    def _remove_leftovers(self) -> None:
        shutil.rmtree(self.root / "staging", ignore_errors=True)
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

    def lookup(self, upload_id: str) -> UploadRecord | None:
        found = self.records("WHERE upload_id = ?", upload_id)
        return found[0] if found else None

    def stage(self, record: UploadRecord) -> StagedUpload:
        return StagedUpload(self.root / "staging" / record.upload_id, record)

    def commit(self, staged: StagedUpload) -> UploadRecord:
        """Make a fully received upload durable, then record it as stored."""
        record = staged.record
        if staged.received != record.rows:
            raise ValueError(f"received {staged.received} of {record.rows} rows")
        staged.close_durably()
        target = self._folder(record)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.folder, target)
        _fsync_dir(target.parent)
        self.db.execute("INSERT INTO uploads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (record.upload_id, record.table_name, record.owner, record.rows,
                         record.schema_hash, record.digest, json.dumps(list(record.columns)),
                         record.policy, "stored", time.time()))
        return record

    def set_state(self, upload_id: str, state: str) -> None:
        self.db.execute("UPDATE uploads SET state = ?, updated = ? WHERE upload_id = ?",
                        (state, time.time(), upload_id))
        if state == "rejected":
            record = self.lookup(upload_id)
            shutil.rmtree(self._folder(record), ignore_errors=True)

    def current(self, table_name: str) -> UploadRecord | None:
        """The table's most recently readied upload: the version jobs use."""
        ready = self.records("WHERE table_name = ? AND state = 'ready'", table_name)
        return ready[-1] if ready else None

    def load(self, record: UploadRecord) -> dict[str, np.ndarray]:
        folder = self._folder(record)
        return {name: np.fromfile(folder / f"{name}.u64", dtype=U64) for name in record.columns}

    def _folder(self, record: UploadRecord) -> Path:
        return self.root / "tables" / record.table_name / record.upload_id

    def close(self) -> None:
        self.db.close()
