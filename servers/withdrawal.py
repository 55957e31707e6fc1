"""An owner takes a table back: every version of it, on both servers, crash consistent.

The owner's client drives it (client/client.py withdraw_table), each step idempotent and run on
both servers at once, the next only once both answered:
1. WITHDRAW: the table is marked withdrawn, durably and with its live
   pointer removed in the same transaction (servers/storage.py), so from then on no job on
   that server reads it, and a job needs both servers; its uploads in progress stop, its queued
   jobs fail ("table T was withdrawn by its owner") and its running jobs are cancelled; then its
   files go, then its catalog rows.
2. WITHDRAW_END, on both, once both deleted: the mark is lifted and the table may be uploaded
   again.
A kill at any step leaves the mark on the server it hit (a restart finishes the deletion,
Storage.remove_leftovers) and the table unusable; running the withdrawal again completes it.
The owner's client lifts no mark before both servers deleted; and since a job reads only a
version live on both servers, a table gone or marked on one is unusable whatever the other
holds (a client that lifted a mark early would only delay its own withdrawal).

A withdrawal has an id the owner's client draws, and its retries reuse it: the client first
asks both servers for a mark of the table and takes its id (a server keeps the id of the mark
it holds). Each server's audit log records one `withdraw` entry per withdrawal id, once WITHDRAW
has deleted everything, and no second one for a retry; so whichever step a kill interrupts, on
whichever server, the two logs end with the same entries.

What is kept: the privacy budget ledger (servers/budget.py), since privacy spent on the data is
not given back by deleting it, and the jobs' stored outputs, which belong to their recipients.
"""

from __future__ import annotations

import logging

from twofold.mpc.service import RequestError
from twofold.owners.schema import Schema
from twofold.servers.audit import Audit
from twofold.servers.job_queue import JobQueue
from twofold.servers.storage import Storage
from twofold.servers.uploads import Uploads

log = logging.getLogger("twofold.server")


class Withdrawal:
    def __init__(self, schema: Schema, storage: Storage, uploads: Uploads, queue: JobQueue,
                 audit: Audit):
        self.schema = schema
        self.storage = storage
        self.uploads = uploads
        self.queue = queue
        self.audit = audit

    def _owned(self, owner: str, table_name: str) -> str:
        table = self.schema.table(table_name)
        if table.owner != owner:
            raise RequestError(f"table {table.name} belongs to {table.owner}, not {owner}")
        return table.name

    def withdraw(self, owner: str, table_name: str, withdrawal: str) -> dict:
        """Step 1 (again, after a failure: it resumes)."""
        name = self._owned(owner, table_name)
        withdrawal = self.storage.mark_withdrawn(name, owner, withdrawal)
        self.uploads.abandon_table(owner, name)
        self.queue.table_withdrawn(name)
        self.storage.remove_files(name)
        self.storage.forget_versions(name)
        self.audit.withdraw(owner, name, withdrawal)  # fsynced before the owner hears of it
        log.info("%s withdrew table %s: every version deleted", owner, name)
        return {"status": "deleted"}

    def end(self, owner: str, table_name: str) -> dict:
        """Step 2: both servers deleted the table."""
        self.storage.lift_withdrawal(self._owned(owner, table_name))
        return {"status": "ended"}

    def tables(self, owner: str) -> dict:
        """The owner's versions here and the tables being withdrawn here."""
        return {"versions": self.storage.versions(owner),
                "withdrawing": self.storage.withdrawing(owner)}
