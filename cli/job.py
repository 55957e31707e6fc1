"""`twofold job ...` and `twofold reveal`: what analysts and recipients run."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from twofold.client import Client, failure, outcome
from twofold.mpc.actions import State

job_app = typer.Typer(help="Submit jobs and follow them.", no_args_is_help=True)
CONFIG_HELP = "client.toml (or an owner's config): your key and the two servers."


def show_stage(status, job_id: str):
    """An on_status callback: the job's stage on a rich status line."""
    def show(statuses):
        status.update(f"job {job_id}: {statuses[0].get('stage') or statuses[0]['state']}")
    return show


@job_app.command("submit")
def job_submit(spec: Path = typer.Argument(..., help="The job spec (TOML)."),
               config: Path = typer.Option(..., help=CONFIG_HELP),
               job_id: str = typer.Option(None, "--id", help="Job id (default: random)."),
               wait: bool = typer.Option(False, help="Wait until the job is done or failed."),
               as_json: bool = typer.Option(False, "--json")):
    """Send SPEC to both servers; they check it against the schema and the uploads first."""
    client = Client(config)
    job = client.submit(spec.read_text(), job_id=job_id)
    result = {"job_id": job, "state": State.QUEUED}
    if wait:
        with Console(stderr=True).status("running") as status:
            final = client.wait(job, on_status=show_stage(status, job), check=False)
        result = {"job_id": job, "state": outcome(final), "error": failure(final)}
    typer.echo(json.dumps(result) if as_json else f"job {result['job_id']}: {result['state']}"
               + (f" ({result['error']})" if result.get("error") else ""))
    if result["state"] == State.FAILED:
        raise typer.Exit(1)


@job_app.command("explain")
def job_explain(spec: Path = typer.Argument(..., help="The job spec (TOML)."),
                config: Path = typer.Option(..., help=CONFIG_HELP),
                as_json: bool = typer.Option(False, "--json")):
    """What SPEC would read (every column and its role, per table) and release, the owners'
    rules that apply and whether both servers would accept it; nothing runs. Exit code 1 if
    they would refuse it."""
    explained = Client(config).explain(spec.read_text())
    if as_json:
        typer.echo(json.dumps(explained))
    else:
        typer.echo("\n".join(explanation_lines(explained)))
    if not explained["accepted"]:
        raise typer.Exit(1)


def explanation_lines(explained: dict) -> list[str]:
    exposure = explained["exposure"]
    lines = [f"{exposure['kind']} job, releasing {exposure['output']} to "
             f"{', '.join(exposure['recipients'])} at privacy level {exposure['level']}"]
    if exposure["charge"]:
        charge, tau = exposure["charge"], exposure["privacy"]["tau"]
        lines.append(f"differentially private per {exposure['unit']} entity (tau {tau}); "
                     f"charged epsilon {charge['epsilon']:g}, delta {charge['delta']:g} to "
                     "each table it protects")
    lines.append(f"minimum group sizes count entities over {exposure['scope']}")
    findings = explained["findings"]
    for table, read in exposure["tables"].items():
        lines.append(f"table {table} (entities: {read['entities']})")
        for finding in findings:
            if finding["table"] == table:  # each reason starts "table T: "
                mark = "allowed" if finding["allowed"] else "REFUSED"
                lines.append(f"  {mark:8} {finding['why'].split(': ', 1)[1]}")
    lines.append("accepted: both servers would queue it" if explained["accepted"] else
                 f"refused: {explained['refusal']}")
    return lines


@job_app.command("status")
def job_status_command(job_id: str, config: Path = typer.Option(..., help=CONFIG_HELP),
                       as_json: bool = typer.Option(False, "--json")):
    """State of a job on both servers; for its recipients also the stage, and time, bytes and
    rounds per stage. JOB: its id, or submitter/id (ids are per submitter)."""
    statuses = Client(config).status(job_id)
    if as_json:
        typer.echo(json.dumps(statuses))
    else:
        for party, status in enumerate(statuses):
            line = f"server {party}: {status['state']}"
            line += f", stage {status['stage']}" if status.get("stage") else ""
            line += f" ({status['error']})" if status["error"] else ""
            typer.echo(line)
        measured = [(party, s) for party, s in enumerate(statuses) if s.get("costs")]
        if measured:  # recipients see costs: those of the first server that answered them
            party, status = measured[0]
            for stage, cost in status["costs"].items():
                typer.echo(f"  {stage}: {cost['wall_s']:.2f} s, {cost['bytes_sent']:,} bytes, "
                           f"{cost['rounds']} rounds")
            typer.echo(f"  job: {status['seconds']:.2f} s on server {party}")
    if any(s["state"] == State.UNREACHABLE for s in statuses):
        raise typer.Exit(1)


@job_app.command("cancel")
def job_cancel_command(job_id: str, config: Path = typer.Option(..., help=CONFIG_HELP),
                       as_json: bool = typer.Option(False, "--json")):
    """Stop a job you submitted (JOB: its id), or one that reads a table you own (JOB:
    submitter/id), on both servers; it releases nothing."""
    replies = Client(config).cancel(job_id)
    typer.echo(json.dumps({"job_id": job_id, "states": [r["state"] for r in replies]})
               if as_json else f"job {job_id}: cancelled")


def reveal_command(job_id: str = typer.Argument(...),
                   config: Path = typer.Option(..., help=CONFIG_HELP),
                   as_json: bool = typer.Option(False, "--json", help="JSON instead of CSV."),
                   out: Path = typer.Option(None, "--out", help="Write to FILE, not stdout.")):
    """Fetch both servers' shares of a job's output and reconstruct it here (recipients only;
    JOB: its id, or submitter/id).

    CSV by kind: rows, groups and predictions as rows; statistics as name,statistic,value;
    a model as term,coefficient (raw units); metrics as metric,value. --json gives everything,
    a model's scaling and privacy ledger included."""
    result = Client(config).reveal(job_id)
    text = result.to_json() + "\n" if as_json else result.to_csv()
    if result.kind == "model" and not result.data["released"]:
        typer.echo(f"twofold: {result.data['reason']}", err=True)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
