"""`twofold job ...` and `twofold reveal`: what analysts and recipients run."""

from __future__ import annotations

import json
from pathlib import Path

import tomli_w
import typer
from rich.console import Console

from twofold.client import Client, failure, outcome
from twofold.mpc.actions import State
from twofold.mpc.errors import TwofoldError

job_app = typer.Typer(help="Submit jobs and follow them.", no_args_is_help=True)
CONFIG_HELP = "client.toml (or an owner's config): your key and the two servers."
SPEC_HELP = "The job spec (TOML); or give --sql or --sql-file."
SQL_HELP = "The job as one SQL statement (docs/sql.md), instead of SPEC."
SQL_FILE_HELP = "The job as a file of one SQL statement, instead of SPEC."


def job_text(client: Client, spec: Path | None, sql: str | None, sql_file: Path | None
             ) -> tuple[str, str | None, bool]:
    """(the spec's TOML text, the job id SQL gives it (CREATE MODEL m), whether it came from
    SQL), from exactly one of SPEC, --sql and --sql-file."""
    given = [source for source in (spec, sql, sql_file) if source is not None]
    if len(given) != 1:
        raise TwofoldError("give the job as one of SPEC (a TOML file), --sql or --sql-file")
    if spec is not None:
        return spec.read_text(), None, False
    translated = client.translate(sql if sql is not None else Path(str(sql_file)).read_text())
    return tomli_w.dumps(translated.spec), translated.job_id, True


def show_stage(status, job_id: str | None = None):
    """An on_status callback: the job's stage on a rich status line."""
    def show(statuses):
        name = job_id or statuses[0].get("job", "")
        status.update(f"job {name}: {statuses[0].get('stage') or statuses[0]['state']}")
    return show


@job_app.command("submit")
def job_submit(spec: Path = typer.Argument(None, help=SPEC_HELP),
               config: Path = typer.Option(..., help=CONFIG_HELP),
               job_id: str = typer.Option(None, "--id", help="Job id (default: random)."),
               wait: bool = typer.Option(False, help="Wait until the job is done or failed."),
               as_json: bool = typer.Option(False, "--json"),
               sql: str = typer.Option(None, "--sql", help=SQL_HELP),
               sql_file: Path = typer.Option(None, "--sql-file", help=SQL_FILE_HELP)):
    """Send SPEC to both servers; they check it against the schema and the uploads first."""
    client = Client(config)
    text, named, _ = job_text(client, spec, sql, sql_file)
    job = client.submit(text, job_id=job_id or named)
    result = {"job_id": job, "state": State.QUEUED}
    if wait:
        with Console(stderr=True).status("running") as status:
            final = client.wait(job, on_status=show_stage(status, job), check=False)
        result = {"job_id": job, "state": outcome(final), "error": failure(final)}
    typer.echo(json.dumps(result) if as_json else f"job {result['job_id']}: {result['state']}"
               + (f" ({result['error']})" if result.get("error") else ""))
    if result["state"] == State.FAILED:
        if as_json:  # the reason on stderr too, where a failing command says why
            typer.echo(f"twofold: job {job} failed: {result['error']}", err=True)
        raise typer.Exit(1)


@job_app.command("explain")
def job_explain(spec: Path = typer.Argument(None, help=SPEC_HELP),
                config: Path = typer.Option(..., help=CONFIG_HELP),
                as_json: bool = typer.Option(False, "--json"),
                sql: str = typer.Option(None, "--sql", help=SQL_HELP),
                sql_file: Path = typer.Option(None, "--sql-file", help=SQL_FILE_HELP)):
    """What SPEC would read (every column and its role, per table) and release, the owners'
    rules that apply and whether both servers would accept it; nothing runs. Exit code 1 if
    they would refuse it. From SQL, the spec it translates to comes first."""
    client = Client(config)
    text, _, from_sql = job_text(client, spec, sql, sql_file)
    explained = client.explain(text)
    if as_json:
        typer.echo(json.dumps({**explained, "spec": text} if from_sql else explained))
    else:
        spec_lines = ["the SQL's job spec:", *(f"  {line}" for line in text.splitlines()
                                               if line)] if from_sql else []
        typer.echo("\n".join(spec_lines + explanation_lines(explained)))
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
    lines += plan_lines(explained["plan"])
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


def plan_lines(plan: dict) -> list[str]:
    """The join tree: each binary join's one sort (its size is public), then Theta."""
    lines = [f"join plan: top table {plan['root']}" + ("" if plan["steps"] else ", no joins")]
    for step in plan["steps"]:
        parent_key, child_key = step["on"]
        carried = (f"with the columns of {step['child']}" if step["carries_columns"]
                   else "with its key only")
        lines.append(f"  {step['parent']} join {step['child']} on {parent_key} = {child_key}: "
                     f"a sort of {step['sort_rows']:,} rows on a {step['key_bits']}-bit key, "
                     f"{carried}")
    lines += [f"  theta: {a} = {b}" for a, b in plan["theta"]]
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


def query_command(sql: str = typer.Argument(None, help="One SQL statement (docs/sql.md)."),
                  config: Path = typer.Option(..., help=CONFIG_HELP),
                  sql_file: Path = typer.Option(None, "--sql-file", help="Read it from FILE."),
                  job_id: str = typer.Option(None, "--id", help="Job id (default: random; "
                                             "CREATE MODEL m: m)."),
                  as_json: bool = typer.Option(False, "--json", help="JSON records, not CSV."),
                  out: Path = typer.Option(None, "--out", help="Write to FILE, not stdout.")):
    """Run one SQL statement as a job: submit, wait (its stage on stderr), reveal, and print
    the result as the query asks for it (a model: its coefficients)."""
    if (sql is None) == (sql_file is None):
        raise TwofoldError("give the query as SQL text or --sql-file")
    client = Client(config)
    text = sql if sql is not None else Path(str(sql_file)).read_text()
    with Console(stderr=True).status("translating") as status:
        frame = client.sql(text, job_id=job_id, on_status=show_stage(status, job_id))
    shown = frame.to_json(orient="records") + "\n" if as_json else frame.to_csv(index=False)
    if out is None:
        typer.echo(shown, nl=False)
    else:
        out.write_text(shown)
