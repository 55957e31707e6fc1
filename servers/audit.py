"""One server's audit log: every event that touches owners' data or jobs' outputs, as
append-only, hash-chained entries signed with the server's Ed25519 key (mpc/audit.py has the
entries' format and the checks clients run; docs/audit.md what each party sees and what the
checks prove).

The log is data_dir/audit.log, one entry per line. Each entry is written and fsynced before the
action it records is acknowledged (to the client, or, for a job's start and spend, before the
job goes on); a last line cut short by a crash was never acknowledged, and is dropped when the
server starts. Entries come from the service loop and from job threads: a lock keeps them in
one chain.

Who sees what (`view`): a table's owner its uploads and withdrawals; a job's submitter, its
recipients and the owners of the tables it reads every entry about the job (its submission,
start, budget spend, release and fetches). Every other entry comes as a stub (its position and
hashes), so a client checks every link of the chain but learns nothing of others' events
beyond their number: each entry holds a random nonce, so a stub's hash cannot be matched
against guesses of its content.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from twofold.mpc.audit import (
    GENESIS,
    AuditError,
    Entry,
    columns_digest,
    decode_view,
    encode_view,
)
from twofold.mpc.outputs import Output
from twofold.mpc.signing import SigningKey
from twofold.owners.schema import Schema
from twofold.servers.exposure import analyze
from twofold.servers.jobspec import JobSpec
from twofold.servers.storage import UploadRecord

LOG_NAME = "audit.log"


class Audit:
    def __init__(self, data_dir: Path, key: SigningKey):
        self.path = Path(data_dir) / LOG_NAME
        self.key = key
        self._lock = threading.Lock()
        last = self._last_entry()
        self._next = (last.seq + 1, last.hash) if last else (0, GENESIS)
        self._file = open(self.path, "ab")

    def _last_entry(self) -> Entry | None:
        """The last stored entry, which the next one follows; a last line without its newline
        is cut off for good. A last entry that does not parse stops the server: its chain
        cannot go on."""
        if not self.path.exists():
            return None
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):
            os.truncate(self.path, data.rfind(b"\n") + 1)
            data = data[:data.rfind(b"\n") + 1]
        try:
            entries = decode_view(data[data.rfind(b"\n", 0, -1) + 1:])
        except ValueError as error:
            raise AuditError(f"{self.path}: the last entry does not parse ({error}); move the "
                             "log aside to start a new chain") from None
        return entries[-1] if entries else None

    def _append(self, kind: str, event: dict, own: dict | None = None) -> None:
        with self._lock:
            seq, prev = self._next
            entry = Entry(seq, prev, kind, event, {"at": time.time(),
                                                   "nonce": secrets.token_hex(16), **(own or {})})
            signed = replace(entry, signature=self.key.sign(entry.body()).hex())
            self._file.write(encode_view([signed]))
            self._file.flush()
            os.fsync(self._file.fileno())
            self._next = (seq + 1, signed.hash)

    # ---- the events ----------------------------------------------------------------------

    def upload(self, record: UploadRecord, shares: Mapping[str, np.ndarray]) -> None:
        """An upload became its table's live version here (the peer holds the same)."""
        self._append("upload", {
            "owner": record.owner, "table": record.table_name, "upload_id": record.upload_id,
            "rows": record.rows, "schema_hash": record.schema_hash, "digest": record.digest,
            "policy_digest": hashlib.sha256(record.policy.encode()).hexdigest()},
            {"shares_digest": columns_digest(shares)})

    def withdraw(self, owner: str, table: str, withdrawal: str) -> None:
        """Every version of an owner's table deleted here, by the withdrawal of that id: once
        per id, however often it is retried."""
        event = {"owner": owner, "table": table, "withdrawal": withdrawal}
        with self._lock:
            logged = any(entry.kind == "withdraw" and entry.event == event
                         for entry in decode_view(self.path.read_bytes()))
        if not logged:
            self._append("withdraw", event)

    def submit(self, schema: Schema, submitter: str, job_id: str, spec: JobSpec) -> None:
        """A job queued here: what it will read, in which roles, and who receives it."""
        exposure = analyze(spec, schema)
        self._append("submit", {
            "job": f"{submitter}/{job_id}", "submitter": submitter, "spec_hash": spec.hash,
            "recipients": list(spec.recipients), "kind": exposure.kind,
            "output": exposure.output, "level": exposure.level,
            "tables": list(exposure.tables),
            "owners": sorted({schema.table(table).owner for table in exposure.tables}),
            "uses": [[u.table, u.column, u.role, u.function] for u in exposure.uses],
            "charge": exposure.charge.as_dict() if exposure.charge else None})

    def start(self, job: str, versions: dict[str, str], model: str) -> None:
        """Both servers agreed to run the job on these table versions (and model)."""
        self._append("start", {"job": job, "versions": versions, "model": model})

    def spend(self, job: str, spent: dict[str, dict]) -> None:
        """The job's privacy charge, recorded on each protected table's budget."""
        self._append("spend", {"job": job, "tables": spent})

    def release(self, job: str, output: Output) -> None:
        """The job's output stored for its recipients: its digest is this server's own."""
        self._append("release", {
            "job": job, "output": output.kind, "columns": [c.name for c in output.columns],
            "rows": [int(np.size(values)) for values in output.shares]},
            {"output_digest": columns_digest(
                {c.name: values for c, values in zip(output.columns, output.shares, strict=True)})})

    def fetch(self, client: str, job: str) -> None:
        self._append("fetch", {"job": job, "client": client})

    # ---- what a client sees --------------------------------------------------------------

    def view(self, client: str) -> bytes:
        """The whole log as `client` may see it (module docstring), as JSON lines."""
        with self._lock:
            entries = decode_view(self.path.read_bytes())
        parties = {entry.event.get("job"): {entry.event.get("submitter"),
                                            *entry.event.get("recipients", []),
                                            *entry.event.get("owners", [])}
                   for entry in entries if entry.kind == "submit"}

        def visible(entry: Entry) -> bool:
            if "owner" in entry.event:  # an upload or a withdrawal
                return entry.event["owner"] == client
            return client in parties.get(entry.event.get("job"), ())

        return encode_view([entry if visible(entry) else entry.stub() for entry in entries])

    def close(self) -> None:
        self._file.close()
