"""An owner's tables on one server: uploads (begin, chunks, commit, activate), the peer's check
that both servers hold the same, a table's live version and its privacy budget.

A table version becomes ready (usable) only when both servers hold it durably with the same
upload id, table, row count, schema hash and content digest, and both have checked its values
on shares (servers/check_queue.py: until then an activation answers "checking"); activating it
(again) makes it the table's live version on both (servers/storage.py keeps the catalog).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from twofold.mpc.actions import PEER_CHECK
from twofold.mpc.service import RequestError, require_text
from twofold.owners.keys import EXACT_LIMIT
from twofold.owners.policy import Policy, PolicyError
from twofold.owners.schema import Schema
from twofold.servers.audit import Audit
from twofold.servers.budget import BudgetLedger
from twofold.servers.config import Quotas
from twofold.servers.storage import StagedUpload, Storage, UploadRecord
from twofold.servers.upload_checks import refusal

log = logging.getLogger("twofold.server")
MAX_UPLOADS_IN_PROGRESS = 4  # per owner; a newer begin abandons the oldest


class Uploads:
    """`call_peer(header)` asks the other server and returns its reply's fields;
    `request_check(record)` asks for a check of its values (server 0 runs it), or says why the
    last one failed."""

    def __init__(self, party: int, schema: Schema, storage: Storage, data_dir,
                 call_peer: Callable[[dict], Awaitable[dict]], audit: Audit, quotas: Quotas,
                 request_check: Callable[[UploadRecord], str | None]):
        self.party = party
        self.quotas = quotas
        self.schema = schema
        self.storage = storage
        self.data_dir = data_dir
        self.call_peer = call_peer
        self.audit = audit
        self.request_check = request_check
        self.staged: dict[tuple[str, str], StagedUpload] = {}  # by (owner, upload id)

    def begin(self, owner: str, upload_id: str, header: dict) -> dict:
        table = self.schema.table(require_text(header, "table"))
        if table.owner != owner:
            raise RequestError(f"table {table.name} belongs to {table.owner}, not {owner}")
        if header.get("schema_hash") != self.schema.hash:
            raise RequestError("the owner's schema differs from the servers' schema")
        if header.get("columns") != table.stored_columns:
            raise RequestError(f"columns {header.get('columns')!r:.200} do not match table "
                               f"{table.name}")
        rows = header.get("rows")
        if not isinstance(rows, int) or isinstance(rows, bool) or not 0 < rows <= EXACT_LIMIT:
            raise RequestError(f"'rows' must be a whole number from 1 to {EXACT_LIMIT}")
        if table.rows is not None and rows != table.rows:
            raise RequestError(f"{rows} rows, the schema fixes {table.rows} for {table.name}")
        try:
            policy = Policy.from_json(require_text(header, "policy"))
            policy.check_against(self.schema, table)
        except PolicyError as error:
            raise RequestError(f"malformed policy: {error}") from None
        record = UploadRecord(upload_id, table.name, owner, rows, self.schema.hash,
                              require_text(header, "digest"), tuple(table.stored_columns),
                              policy.to_json())
        existing = self.storage.lookup(owner, upload_id)
        if existing is not None:
            if existing.state == "rejected":
                raise RequestError(f"upload {upload_id} was refused (the servers' copies "
                                   "differed); upload under another id")
            if existing.state == "invalid":
                raise RequestError(refusal(table.name))
            if existing.same_content(record):
                return {"status": "exists"}
            raise RequestError(f"upload id {upload_id} was already used for other content")
        self.storage.refuse_withdrawn(table.name)
        old = self.staged.pop((owner, upload_id), None)
        if old is not None:  # a retried upload starts over
            old.abandon()
        self._check_quota(owner, rows, len(record.columns))
        in_progress = [key for key in self.staged if key[0] == owner]
        for key in in_progress[:len(in_progress) + 1 - MAX_UPLOADS_IN_PROGRESS]:
            log.warning("abandoning %s's upload %s: a newer one started", owner, key[1])
            self.staged.pop(key).abandon()  # each holds open files: keep them bounded
        self.staged[owner, upload_id] = self.storage.stage(record)
        return {"status": "send"}

    def _check_quota(self, owner: str, rows: int, columns: int) -> None:
        """The owner's stored versions and uploads in progress, with this one, stay within the
        operator's quotas (servers/config.py), counted before a row is received."""
        held_rows, held_bytes = self.storage.usage(owner)
        for (who, _), staged in self.staged.items():
            if who == owner:
                held_rows += staged.record.rows
                held_bytes += staged.record.rows * len(staged.record.columns) * 8
        total_rows, total_bytes = held_rows + rows, held_bytes + rows * columns * 8
        limits = self.quotas.of(owner)
        if total_rows > limits.owner_rows:
            raise RequestError(f"{owner}'s tables would hold {total_rows} rows on server "
                               f"{self.party}, over its quota of {limits.owner_rows} rows "
                               "(owner_rows); withdraw a table or ask the operator")
        if total_bytes > limits.owner_bytes:
            raise RequestError(f"{owner}'s tables would take {total_bytes} bytes on server "
                               f"{self.party}, over its quota of {limits.owner_bytes} bytes "
                               "(owner_bytes); withdraw a table or ask the operator")

    def abandon_table(self, owner: str, table_name: str) -> None:
        """The table is being withdrawn: its uploads in progress stop."""
        for key in [key for key, staged in self.staged.items()
                    if key[0] == owner and staged.record.table_name == table_name]:
            self.staged.pop(key).abandon()

    def chunk(self, owner: str, upload_id: str, start, arrays) -> dict:
        self._owned_staged(owner, upload_id).append(start, arrays)
        return {}

    def _owned_staged(self, owner: str, upload_id: str) -> StagedUpload:
        staged = self.staged.get((owner, upload_id))
        if staged is None:
            raise RequestError(f"no upload {upload_id} in progress for {owner}")
        return staged

    def commit(self, owner: str, upload_id: str) -> dict:
        staged = self._owned_staged(owner, upload_id)
        self.storage.commit(staged)
        del self.staged[owner, upload_id]
        return {"status": "stored"}

    async def activate(self, owner: str, upload_id: str) -> dict:
        """Make the upload the live version of its table on both servers, once both hold the
        same and have checked its values ("checking" until then: ask again); activating an
        earlier upload again brings it back."""
        record = self.storage.lookup(owner, upload_id)
        if record is None:
            raise RequestError(f"server {self.party} holds no upload {upload_id} from {owner}")
        if record.state == "rejected":
            raise RequestError(f"upload {upload_id} was refused: the servers' copies differ")
        if record.state == "invalid":
            raise RequestError(refusal(record.table_name))
        response = await self.call_peer({"action": PEER_CHECK, "record": record.as_message()})
        status = response.get("status")
        if status == "missing":
            raise RequestError(f"server {1 - self.party} does not hold upload {upload_id} yet")
        if status == "mismatch":
            self.storage.reject(record)
            raise RequestError(f"servers 0 and 1 received different metadata for upload "
                               f"{upload_id}; both refused it")
        if status == "invalid":
            self.storage.reject(record, "invalid")
            raise RequestError(refusal(record.table_name))
        if status != "match":
            raise RequestError(f"server {1 - self.party} answered {status!r:.40}")
        if record.state != "ready" or response.get("ready") is not True:
            failure = self.request_check(record)  # and checks it again
            return {"status": "checking", **({"failed": failure} if failure else {})}
        was_live = self.storage.make_live(record)
        if not was_live:  # a new live version: logged before the owner hears of it
            self.audit.upload(record, self.storage.load(record))
        return {"status": "ready", "was_live": was_live}

    def peer_check(self, theirs: UploadRecord) -> dict:
        """The peer asks whether this server holds the upload it is activating, the same; if
        both have checked it, it becomes (again) the live one."""
        mine = self.storage.lookup(theirs.owner, theirs.upload_id)
        if mine is None:
            return {"status": "missing"}
        if mine.state == "rejected" or not mine.same_content(theirs):
            self.storage.reject(mine)
            return {"status": "mismatch"}
        if "invalid" in (mine.state, theirs.state):  # one server's marking was cut short
            self.storage.reject(mine, "invalid")
            return {"status": "invalid"}
        if mine.state == theirs.state == "ready":
            if not self.storage.make_live(mine):  # (again) the live one
                self.audit.upload(mine, self.storage.load(mine))
            return {"status": "match", "ready": True}
        self.request_check(mine)
        return {"status": "match", "ready": False}

    def status(self, table_name: str) -> dict:
        current = self.storage.current(table_name)
        return {"current": current.as_message() if current else None}

    def budget(self, owner: str, table_name: str) -> dict:
        """A table's privacy budget as this server holds it: for the table's owner only."""
        table = self.schema.table(table_name)
        if table.owner != owner:
            raise RequestError(f"table {table.name} belongs to {table.owner}, not {owner}")
        current = self.storage.current(table.name)
        total = Policy.from_json(current.policy).budget if current else None
        ledger = BudgetLedger(self.data_dir)
        try:
            spent, history = ledger.spent(table.name), ledger.history(table.name)
        finally:
            ledger.close()
        return {"table": table.name, "total": total.as_dict() if total else None,
                "spent": {"epsilon": spent.epsilon, "delta": spent.delta},
                "history": history}
