"""`twofold audit verify`, `twofold owner audit` and `twofold job receipt`: what a client checks
in the servers' signed audit logs (client/audit.py; docs/audit.md). Each exits 1 when
anything does not verify, after naming every problem in one line."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import typer

from twofold.audit import Audited, receipt, table_jobs, verify
from twofold.config import load_client_config

audit_app = typer.Typer(help="Check the servers' signed audit logs.", no_args_is_help=True)
CONFIG_HELP = "Your config, naming each server's verify_key."


def _problems(audit: Audited) -> None:
    """Name every problem on stderr; exit 1 if there is any."""
    for problem in audit.problems:
        typer.echo(f"twofold: {problem}", err=True)
    if audit.problems:
        raise typer.Exit(1)


def _when(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds)) if seconds else "-"


@audit_app.command("verify")
def audit_verify(config: Path = typer.Option(..., help=CONFIG_HELP),
                 as_json: bool = typer.Option(False, "--json")):
    """Fetch both servers' audit logs (what you may see of them), check each chain and every
    signature, and that the two servers agree on every event both log."""
    audit = asyncio.run(verify(load_client_config(config)))
    shown = [sum(not e.is_stub for e in view) for view in audit.views]
    if as_json:
        typer.echo(json.dumps({"entries": [len(v) for v in audit.views], "yours": shown,
                               "problems": audit.problems}))
    else:
        for party, view in enumerate(audit.views):
            typer.echo(f"server {party}: {len(view)} entries, {shown[party]} about you")
        if not audit.problems:
            typer.echo("both chains and every signature verify; the servers agree on every "
                       "event both log")
    _problems(audit)


def owner_audit(table: str = typer.Argument(..., help="Your table."),
                config: Path = typer.Option(..., help=CONFIG_HELP),
                as_json: bool = typer.Option(False, "--json")):
    """Every job that read TABLE, from the verified audit logs: when, who submitted it, its
    recipients and kind, your columns it read and in which role, the version it read, the
    epsilon it spent, and whether its result was released (and fetched by whom)."""
    audit = asyncio.run(verify(load_client_config(config)))
    jobs = table_jobs(audit, table)
    typer.echo(json.dumps(jobs) if as_json else
               "\n".join(line for job in jobs for line in job_lines(job))
               or f"no job has read {table}")
    _problems(audit)


def job_lines(job: dict) -> list[str]:
    """One job that read the owner's table, in three lines."""
    columns = ", ".join(f"{c['column']} ({c['role']}{' ' + c['function'] if c['function'] else ''})"
                        for c in job["columns"])
    ran = (f"read version {job['version']} at {_when(job['started_at'])}" if job["version"]
           else "never started")
    spent = f"; epsilon {job['epsilon']:g} spent" if job["epsilon"] is not None else ""
    fetched = f", fetched by {', '.join(job['fetched_by'])}" if job["fetched_by"] else ""
    result = f"released{fetched}" if job["released"] else "withheld (not released)"
    return [f"job {job['job']}: {job['kind']} ({job['output']}, level {job['level']}), "
            f"submitted {_when(job['submitted_at'])} by {job['submitter']} for "
            f"{', '.join(job['recipients'])}",
            f"  columns: {columns}", f"  {ran}{spent}; {result}"]


def job_receipt(job_id: str = typer.Argument(..., help="The job: its id, or submitter/id."),
                config: Path = typer.Option(..., help=CONFIG_HELP),
                as_json: bool = typer.Option(False, "--json", help="Both servers' signed "
                                                                   "entries about the job.")):
    """Both servers' signed statements of what they ran for JOB, on which table versions,
    and what they released; checks that the output shares you fetch now are the ones each
    server logged (recipients only)."""
    audit, statements = asyncio.run(receipt(load_client_config(config), job_id))
    typer.echo(json.dumps(statements) if as_json else
               "\n".join(map(statement_line, statements)))
    if not audit.problems:
        typer.echo("the output shares fetched from each server are the ones it logged",
                   err=as_json)
    _problems(audit)


def statement_line(statement: dict) -> str:
    """One server's entries about a job, in a line: the spec, the versions, the release."""
    by_kind = {entry.get("kind"): entry for entry in statement["entries"]}
    submit, start, release = (by_kind.get(kind) for kind in ("submit", "start", "release"))
    line = f"server {statement['server']}: job {statement['job']}"
    if submit:
        line += f" (spec {submit['event']['spec_hash'][:16]})"
    if start:
        line += " ran on " + ", ".join(f"{table} version {version}"
                                       for table, version in start["event"]["versions"].items())
    if release:
        line += (f"; released {release['event']['output']}, output digest "
                 f"{release['own']['output_digest'][:16]}")
    return line
