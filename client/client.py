"""The Python client: what a data owner, an analyst or a recipient does with Twofold.

    import twofold
    carol = twofold.Client("carol.toml")
    model = carol.run(spec)                  # submit, wait, reveal
    model.to_sklearn().predict(x)

Every call reaches both servers over CurveZMQ with their public keys pinned; outputs are
reconstructed on this machine only. The `twofold` command is a thin layer over this module.

Job ids are per submitter: a job is named by its id (one's own job of that id, else the one
job of that id one receives) or as "submitter/id".
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import tomli_w

from twofold.config import ClientConfig, load_client_config
from twofold.mpc.actions import (
    AUDIT_LOG,
    BUDGET,
    FETCH_OUTPUT,
    JOB_CANCEL,
    JOB_EXPLAIN,
    JOB_STATUS,
    JOB_SUBMIT,
    TABLES,
    WITHDRAW,
    WITHDRAW_END,
    State,
)
from twofold.mpc.audit import AuditError, Entry, decode_view
from twofold.mpc.errors import TwofoldError
from twofold.mpc.outputs import Output
from twofold.mpc.rpc import ServiceUnreachable, each, service_clients
from twofold.owners.policy import Policy
from twofold.owners.prepare import prepare
from twofold.owners.schema import Schema, load_schema
from twofold.owners.upload import UploadResult, dummy_prg, source_digest, upload
from twofold.results import Result, reveal

if TYPE_CHECKING:
    from twofold.servers.sql import Translation

FINISHED = (State.DONE, State.FAILED)


class JobFailed(TwofoldError, RuntimeError):
    """A job ended failed (cancelled included); the message gives each server's reason."""


async def submit_job(config: ClientConfig, spec: str | dict, job_id: str | None = None) -> str:
    """Send the spec (TOML text, or a dict of its sections) to both servers; returns the job
    id (one of this client's own ids) once both have queued it."""
    job_id = job_id or uuid.uuid4().hex
    text = spec_text(spec)
    async with service_clients(config.keys, config.servers, config.timeout_s) as clients:
        await each(c.call({"action": JOB_SUBMIT, "job_id": job_id, "spec": text})
                   for c in clients)
    return job_id


async def explain_job(config: ClientConfig, spec: str | dict) -> list[dict]:
    """Each server's account of what the spec would read and release, the rules that apply
    to it, and whether it would be queued (nothing is queued)."""
    text = spec_text(spec)
    async with service_clients(config.keys, config.servers, config.timeout_s) as clients:
        replies = await each(c.call({"action": JOB_EXPLAIN, "spec": text}) for c in clients)
    return [{k: v for k, v in reply.items() if k not in ("ok", "rid")} for reply, _ in replies]


async def job_status(config: ClientConfig, job_id: str) -> list[dict]:
    """Each server's view of the job: its full name ("job"), state and error, and for the
    job's recipients also its stage, costs and seconds. A server that does not answer shows
    as state "unreachable" with the reason, so what the other one says is still reported."""
    async with service_clients(config.keys, config.servers, config.timeout_s) as clients:
        replies = await asyncio.gather(*(c.call({"action": JOB_STATUS, "job_id": job_id})
                                         for c in clients), return_exceptions=True)
    statuses = []
    for reply in replies:
        if isinstance(reply, ServiceUnreachable):
            statuses.append({"state": State.UNREACHABLE, "error": str(reply)})
        elif isinstance(reply, BaseException):
            raise reply
        else:
            statuses.append(_fields(reply[0]))
    return statuses


async def cancel_job(config: ClientConfig, job_id: str) -> list[dict]:
    """Stop a job on both servers: a queued job never starts, a running one stops at its next
    message and releases nothing."""
    async with service_clients(config.keys, config.servers, config.timeout_s) as clients:
        replies = await each(c.call({"action": JOB_CANCEL, "job_id": job_id})
                             for c in clients)
    return [reply for reply, _ in replies]


async def wait_for_job(config: ClientConfig, job_id: str, timeout_s: float = 3600.0,
                       poll_s: float = 0.2, on_status=None) -> list[dict]:
    """Poll until both servers report the job done or failed (or the timeout passes). A job
    that failed on server 0 while server 1 still holds it queued is over too: server 0 starts
    every job, and never one it has failed."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        statuses = await job_status(config, job_id)
        if on_status is not None:
            on_status(statuses)
        if (all(s["state"] in FINISHED for s in statuses)
                or (statuses[0]["state"] == State.FAILED
                    and statuses[1]["state"] == State.QUEUED)):
            return statuses
        if asyncio.get_running_loop().time() > deadline:
            return statuses
        await asyncio.sleep(poll_s)


async def fetch_outputs(config: ClientConfig, job_id: str) -> list[Output]:
    """Both servers' stored outputs of a job, shares and all (recipients only)."""
    async with service_clients(config.keys, config.servers, config.timeout_s) as clients:
        replies = await each(c.call({"action": FETCH_OUTPUT, "job_id": job_id})
                             for c in clients)
    return [Output.from_meta(reply["meta"], arrays) for reply, arrays in replies]


async def fetch_result(config: ClientConfig, job_id: str) -> Result:
    """Both servers' output shares, reconstructed and decoded on this machine only."""
    return reveal(*await fetch_outputs(config, job_id))


async def run_job(config: ClientConfig, spec: str | dict, *, job_id: str | None = None,
                  timeout_s: float = 3600.0, on_status=None) -> tuple[str, Result]:
    """Submit, wait, check and reveal: (the job id, its output). JobFailed unless done."""
    job_id = await submit_job(config, spec, job_id)
    statuses = await wait_for_job(config, job_id, timeout_s, on_status=on_status)
    if outcome(statuses) != State.DONE:
        raise JobFailed(f"job {job_id} is {outcome(statuses)}: {failure(statuses)}")
    return job_id, await fetch_result(config, job_id)


async def table_budget(config: ClientConfig, table: str) -> list[dict]:
    """Each server's record of the table's privacy budget (the table's owner only)."""
    async with service_clients(config.keys, config.servers, config.timeout_s) as clients:
        replies = await each(c.call({"action": BUDGET, "table": table}) for c in clients)
    return [_fields(reply) for reply, _ in replies]


async def owner_tables(config: ClientConfig) -> list[dict]:
    """Each server's list of this owner's table versions ("versions": table, upload_id, rows,
    state, updated, live) and of its tables being withdrawn there, with their withdrawal ids
    ("withdrawing")."""
    async with service_clients(config.keys, config.servers, config.timeout_s) as clients:
        replies = await each(c.call({"action": TABLES}) for c in clients)
    return [_fields(reply) for reply, _ in replies]


def disagreements(listings: list[dict]) -> list[str]:
    """Where the two servers' listings (owner_tables) differ, one line each; [] if they
    agree. The times may differ: each server records its own."""
    def held(listing: dict) -> dict:
        return {(v["table"], v["upload_id"]): (v["rows"], v["state"], v["live"])
                for v in listing["versions"]}

    def describe(version) -> str:
        return "nothing" if version is None else (
            f"{version[0]} rows, {version[1]}{', live' if version[2] else ''}")

    first, second = held(listings[0]), held(listings[1])
    lines = []
    for key in sorted(first.keys() | second.keys()):
        if first.get(key) != second.get(key):
            lines.append(f"{key[0]} version {key[1]}: server 0 holds {describe(first.get(key))}, "
                         f"server 1 {describe(second.get(key))}")
    for party, listing in enumerate(listings):
        lines += [f"{table} is being withdrawn on server {party} only"
                  for table in listing["withdrawing"]
                  if table not in listings[1 - party]["withdrawing"]]
    return lines


async def withdraw_table(config: ClientConfig, table: str) -> None:
    """Delete every version of the owner's table on both servers (servers/withdrawal.py):
    both mark it and delete it, then both lift the mark. Run it again after any failure."""
    async with service_clients(config.keys, config.servers, config.timeout_s) as clients:
        listings = await each(c.call({"action": TABLES}) for c in clients)
        marks = [listing["withdrawing"].get(table) for listing, _ in listings]
        # a retry goes on with the withdrawal a server holds, so each logs it once
        withdrawal = marks[0] or marks[1] or secrets.token_hex(8)
        for action in (WITHDRAW, WITHDRAW_END):
            await each(c.call({"action": action, "table": table, "withdrawal": withdrawal})
                       for c in clients)


async def fetch_audit_logs(config: ClientConfig) -> list[list[Entry]]:
    """Each server's audit log as this client may see it: entries about its own tables and
    jobs in full, every other entry as a stub (servers/audit.py; check with mpc.audit)."""
    async with service_clients(config.keys, config.servers, config.timeout_s) as clients:
        replies = await each(c.call({"action": AUDIT_LOG}) for c in clients)
    views = []
    for party, (_, arrays) in enumerate(replies):
        try:
            views.append(decode_view(arrays[0].tobytes() if arrays else b""))
        except ValueError as error:
            raise AuditError(f"server {party}'s audit log does not parse: {error}") from None
    return views


def _fields(reply: dict) -> dict:
    """A reply's own fields, without those of the wire (ok, the request id, array shapes)."""
    return {key: value for key, value in reply.items() if key not in ("ok", "rid", "arrays")}


def spec_text(spec: str | dict) -> str:
    """A job spec as TOML text: given as text, or as a dict of its sections."""
    return spec if isinstance(spec, str) else tomli_w.dumps(spec)


def outcome(statuses: list[dict]) -> State:
    """One state for both servers: done only when both are."""
    states = {State(s["state"]) for s in statuses}
    if len(states) == 1:
        return states.pop()
    return State.FAILED if State.FAILED in states else State.RUNNING


def failure(statuses: list[dict]) -> str:
    return "; ".join(f"server {p}: {s['error']}" for p, s in enumerate(statuses) if s["error"])


class Client:
    """One party's handle on a deployment, from its config file (or a ClientConfig)."""

    def __init__(self, config: ClientConfig | str | Path):
        self.config = config if isinstance(config, ClientConfig) else load_client_config(config)

    # ---- owners --------------------------------------------------------------------------

    def upload(self, data: pd.DataFrame | str | Path, table: str, schema: Schema | str | Path,
               *, policy: Policy | None = None, where: str | None = None,
               pad_to: int | None = None, upload_id: str | None = None,
               progress=None) -> UploadResult:
        """Check every row of a CSV or Parquet file, or of a DataFrame, against the schema,
        then share it to both servers under the owner's rules (default: the owner alone
        receives anything derived from it). Nothing is sent unless every row passes.
        progress(rows, total) is called as rows go out."""
        schema = schema if isinstance(schema, Schema) else load_schema(Path(schema))
        prepared = prepare(data, schema, table, where=where, pad_to=pad_to,
                           dummy_prg=dummy_prg(self.config.keys, schema, table,
                                               source_digest(data, where, pad_to)))
        sent = None if progress is None else (lambda rows: progress(rows, prepared.rows))
        return asyncio.run(upload(prepared, schema, self.config.keys, self.config.servers,
                                  upload_id=upload_id, timeout_s=self.config.timeout_s,
                                  progress=sent, policy=policy))

    def budget(self, table: str) -> list[dict]:
        """The table's privacy budget as each server records it (its owner only)."""
        return asyncio.run(table_budget(self.config, table))

    def tables(self) -> list[dict]:
        """Each server's list of this owner's table versions (see owner_tables)."""
        return asyncio.run(owner_tables(self.config))

    def withdraw(self, table: str) -> None:
        """Delete every version of the table on both servers; the privacy budget it spent
        stays spent. Queued jobs that read it fail, running ones are cancelled."""
        asyncio.run(withdraw_table(self.config, table))

    def cancel(self, job_id: str) -> list[dict]:
        """Stop a job on both servers: this client's own, or ("submitter/id") one that reads
        a table this owner owns."""
        return asyncio.run(cancel_job(self.config, job_id))

    # ---- analysts and recipients ---------------------------------------------------------

    def submit(self, spec: str | dict, *, job_id: str | None = None) -> str:
        """Send a job spec (TOML text, or a dict of its sections) to both servers."""
        return asyncio.run(submit_job(self.config, spec, job_id))

    def explain(self, spec: str | dict) -> dict:
        """What the job would read and release, the rules that apply, and whether it would be
        accepted, as server 0 sees it (ValueError if the two servers disagree)."""
        first, second = asyncio.run(explain_job(self.config, spec))
        if first != second:
            raise ValueError("the two servers explain the job differently: their tables' "
                             "versions or rules differ (an upload in progress?)")
        return first

    def status(self, job_id: str) -> list[dict]:
        return asyncio.run(job_status(self.config, job_id))

    def wait(self, job_id: str, *, timeout_s: float = 3600.0, on_status=None,
             check: bool = True) -> list[dict]:
        """Each server's final status; with check, JobFailed unless the job is done.
        on_status(statuses) is called at every poll (a progress display, say)."""
        statuses = asyncio.run(wait_for_job(self.config, job_id, timeout_s,
                                            on_status=on_status))
        if check and outcome(statuses) != State.DONE:
            raise JobFailed(f"job {job_id} is {outcome(statuses)}: {failure(statuses)}")
        return statuses

    def reveal(self, job_id: str) -> Result:
        """The job's output, reconstructed here (its recipients only)."""
        return asyncio.run(fetch_result(self.config, job_id))

    def audit_logs(self) -> list[list[Entry]]:
        """Both servers' audit logs as this client may see them (twofold.audit checks them)."""
        return asyncio.run(fetch_audit_logs(self.config))

    def outputs(self, job_id: str) -> list[Output]:
        """Both servers' raw output shares, for an audit of what the servers store."""
        return asyncio.run(fetch_outputs(self.config, job_id))

    def run(self, spec: str | dict, *, job_id: str | None = None, timeout_s: float = 3600.0,
            on_status=None) -> Result:
        """Submit, wait, check and reveal: the recipient's one call."""
        return asyncio.run(run_job(self.config, spec, job_id=job_id, timeout_s=timeout_s,
                                   on_status=on_status))[1]

    # ---- SQL (docs/sql.md) -----------------------------------------------------------------

    def translate(self, sql: str) -> Translation:
        """The job spec one SQL statement is (.spec, its sections), checked against the
        servers' schema; the servers check it again as any spec."""
        from twofold.sql import translation  # sqlglot takes a second to import: SQL only

        return translation(self, sql)

    def sql(self, sql: str, *, job_id: str | None = None, timeout_s: float = 3600.0,
            on_status=None) -> pd.DataFrame:
        """Run one SQL statement: submit its job (CREATE MODEL m: the job m), wait, reveal,
        and return its result as a DataFrame (a model: its coefficients)."""
        from twofold.sql import present

        translated = self.translate(sql)
        result = self.run(translated.spec, job_id=job_id or translated.job_id,
                          timeout_s=timeout_s, on_status=on_status)
        return present(result, translated.shape)
