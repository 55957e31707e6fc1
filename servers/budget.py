"""Each table's privacy budget: what differentially private jobs have spent on it.

An owner may give its table a total (epsilon, delta) in its policy. Every differentially private
job that reads the table spends its charge from it, the sum of the (epsilon, delta) of the
mechanisms it runs (JobSpec.mechanisms; basic composition: the sums must stay within the
total), and identical resubmissions spend again, so repeating a noisy query cannot average the
noise away. The spending is per table, across its versions: a new version of the same
people's data does not start afresh (its policy may raise the total).

Each server keeps its ledger in data_dir/budget.sqlite (WAL, synchronous=FULL). When a job
starts, before any work on the data, both servers exchange what they hold, take the larger
of the two (a server that crashed before recording a spend catches up), refuse the job if it
would go past a total, record the spend durably and wait for the peer to have done the same:
nothing is released that is not on both ledgers.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twofold.ml.dp import Charge
from twofold.mpc.errors import ProtocolMismatch
from twofold.mpc.party import Party
from twofold.mpc.privacy import Privacy
from twofold.owners.policy import PolicyError

# sums of floats recorded in different orders may differ in their last bits, relative to their
# size: an absolute slack would be everything at a total delta of 1e-12
RELATIVE_SLACK = 1e-9


@dataclass(frozen=True)
class Spent:
    epsilon: float
    delta: float


class BudgetLedger:
    def __init__(self, data_dir: Path):
        self.db = sqlite3.connect(Path(data_dir) / "budget.sqlite", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS spends (table_name TEXT, job_id TEXT, "
                        "epsilon REAL, delta REAL, at REAL)")

    def spent(self, table: str) -> Spent:
        epsilon, delta = self.db.execute(
            "SELECT COALESCE(SUM(epsilon), 0), COALESCE(SUM(delta), 0) FROM spends "
            "WHERE table_name = ?", (table,)).fetchone()
        return Spent(epsilon, delta)

    def history(self, table: str) -> list[dict]:
        rows = self.db.execute("SELECT job_id, epsilon, delta, at FROM spends WHERE "
                               "table_name = ? ORDER BY at", (table,)).fetchall()
        return [{"job": job, "epsilon": e, "delta": d, "at": at} for job, e, d, at in rows]

    def record(self, entries: list[tuple[str, str, float, float]]) -> None:
        """(table, job id, epsilon, delta) rows, in one durable transaction."""
        now = time.time()
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO spends VALUES (?, ?, ?, ?, ?)",
                                [(*entry, now) for entry in entries])

    def close(self) -> None:
        self.db.close()


def check_budgets(ledger: BudgetLedger, charge: Charge, budgets: dict[str, Privacy | None],
                  spent: dict[str, Spent] | None = None) -> None:
    """Refuse a job whose charge would take a table past its total."""
    for table, total in sorted(budgets.items()):
        if total is None:
            continue
        used = (spent or {}).get(table) or ledger.spent(table)
        if (used.epsilon + charge.epsilon > total.epsilon * (1 + RELATIVE_SLACK)
                or used.delta + charge.delta > total.delta * (1 + RELATIVE_SLACK)):
            raise PolicyError(
                f"table {table}: its privacy budget has epsilon "
                f"{max(total.epsilon - used.epsilon, 0):g} and delta "
                f"{max(total.delta - used.delta, 0):g} left; this job needs epsilon "
                f"{charge.epsilon:g} and delta {charge.delta:g}")


async def spend(party: Party, ledger: BudgetLedger, job_id: str, charge: Charge,
                budgets: dict[str, Privacy | None]) -> None:
    """Both servers agree on what each table has spent, check the totals and record the
    charge durably, then meet again: 2 rounds, 16 bytes per table."""
    tables = sorted(budgets)
    mine = {table: ledger.spent(table) for table in tables}
    sent = np.array([[mine[t].epsilon, mine[t].delta] for t in tables], np.float64).reshape(-1, 2)
    (received,) = await party.link.exchange(sent.view(np.uint64))
    theirs = received.view(np.float64).reshape(-1, 2)
    agreed = {t: Spent(*np.maximum(sent[i], theirs[i]).tolist()) for i, t in enumerate(tables)}
    check_budgets(ledger, charge, budgets, agreed)
    entries = []
    for table in tables:  # catch up with the peer's larger record, then this job's charge
        gap = (agreed[table].epsilon - mine[table].epsilon,
               agreed[table].delta - mine[table].delta)
        if gap[0] > 0 or gap[1] > 0:
            entries.append((table, f"{job_id} (caught up with server {party.link.peer_id})",
                            *gap))
        entries.append((table, job_id, charge.epsilon, charge.delta))
    ledger.record(entries)
    (done,) = await party.link.exchange(np.ones(1, np.uint64))
    if int(done[0]) != 1:
        raise ProtocolMismatch("the peer did not record the privacy spend")
