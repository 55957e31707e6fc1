"""`twofold job ...` and `twofold reveal`: what analysts and recipients run."""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from pathlib import Path

import typer
from rich.console import Console

from owners.config import load_owner_config
from servers.client import cancel_job, fetch_and_reveal, job_status, submit_job, wait_for_job

job_app = typer.Typer(help="Submit jobs and follow them.", no_args_is_help=True)
CONFIG_HELP = "client.toml (or an owner's config): your key and the two servers."


@job_app.command("submit")
def job_submit(spec: Path = typer.Argument(..., help="The job spec (TOML)."),
               config: Path = typer.Option(..., help=CONFIG_HELP),
               job_id: str = typer.Option(None, "--id", help="Job id (default: random)."),
               wait: bool = typer.Option(False, help="Wait until the job is done or failed."),
               as_json: bool = typer.Option(False, "--json")):
    """Send SPEC to both servers; they check it against the schema and the uploads first."""
    settings = load_owner_config(config)
    job = asyncio.run(submit_job(settings.keys, settings.servers, spec.read_text(), job_id,
                                 settings.timeout_s))
    result = {"job_id": job, "state": "queued"}
    if wait:
        console = Console(stderr=True)
        with console.status("running") as status:
            def show(statuses):
                stage = statuses[0].get("stage") or statuses[0]["state"]
                status.update(f"job {job}: {stage}")
            final = asyncio.run(wait_for_job(settings.keys, settings.servers, job,
                                             on_status=show))
        result = {"job_id": job, "state": _combined(final), "error": _error(final)}
    typer.echo(json.dumps(result) if as_json else f"job {result['job_id']}: {result['state']}"
               + (f" ({result['error']})" if result.get("error") else ""))
    if result["state"] == "failed":
        raise typer.Exit(1)


def _combined(statuses: list[dict]) -> str:
    states = {s["state"] for s in statuses}
    return states.pop() if len(states) == 1 else "failed" if "failed" in states else "running"


def _error(statuses: list[dict]) -> str:
    return "; ".join(f"server {p}: {s['error']}" for p, s in enumerate(statuses) if s["error"])


@job_app.command("status")
def job_status_command(job_id: str, config: Path = typer.Option(..., help=CONFIG_HELP),
                       as_json: bool = typer.Option(False, "--json")):
    """State and stage of a job on both servers, with time, bytes and rounds per stage."""
    settings = load_owner_config(config)
    statuses = asyncio.run(job_status(settings.keys, settings.servers, job_id, settings.timeout_s))
    if as_json:
        typer.echo(json.dumps(statuses))
    else:
        for party, status in enumerate(statuses):
            line = f"server {party}: {status['state']}"
            line += f", stage {status['stage']}" if status["stage"] else ""
            line += f" ({status['error']})" if status["error"] else ""
            typer.echo(line)
        answered = [s for s in statuses if s["state"] != "unreachable"]
        for stage, cost in (answered[0]["costs"] if answered else {}).items():
            typer.echo(f"  {stage}: {cost['wall_s']:.2f} s, {cost['bytes_sent']:,} bytes, "
                       f"{cost['rounds']} rounds")
    if any(s["state"] == "unreachable" for s in statuses):
        raise typer.Exit(1)


@job_app.command("cancel")
def job_cancel_command(job_id: str, config: Path = typer.Option(..., help=CONFIG_HELP),
                       as_json: bool = typer.Option(False, "--json")):
    """Stop a job you submitted, on both servers; it releases nothing."""
    settings = load_owner_config(config)
    replies = asyncio.run(cancel_job(settings.keys, settings.servers, job_id, settings.timeout_s))
    typer.echo(json.dumps({"job_id": job_id, "states": [r["state"] for r in replies]})
               if as_json else f"job {job_id}: cancelled")


def reveal_command(job_id: str = typer.Argument(...),
                   config: Path = typer.Option(..., help=CONFIG_HELP),
                   as_json: bool = typer.Option(False, "--json", help="JSON instead of CSV.")):
    """Fetch both servers' shares of a job's output and reconstruct it here (recipients only).
    Dummy rows are dropped; rows go to stdout as CSV."""
    settings = load_owner_config(config)
    result = asyncio.run(fetch_and_reveal(settings.keys, settings.servers, job_id,
                                          settings.timeout_s))
    if as_json or result["kind"] == "statistics":
        typer.echo(json.dumps(result.get("rows") or result["values"], indent=1))
        return
    rows = result["rows"]
    writer = csv.writer(sys.stdout)
    writer.writerow(list(rows))
    writer.writerows(zip(*rows.values()))
