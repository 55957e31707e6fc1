"""`twofold owner ...`: what a data owner runs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.progress import Progress

from twofold.client import Client, disagreements
from twofold.config import ClientConfig, ClientConfigError, load_client_config
from twofold.mpc.curve import load_keypair, load_public_key
from twofold.mpc.rpc import ServerAddress
from twofold.owners.policy import (
    Policy,
    load_policy_file,
    parse_aggregate_flag,
    policy_from_settings,
)
from twofold.owners.schema import Schema, Table, load_schema

owner_app = typer.Typer(help="Validate and upload your tables as secret shares.",
                        no_args_is_help=True)


def _owner_settings(config, key, server0, server0_key, server1, server1_key) -> ClientConfig:
    if config is not None:
        return load_client_config(config)
    if None in (key, server0, server0_key, server1, server1_key):
        raise ClientConfigError("give --config owner.toml, or all of --key, --server0, "
                                "--server0-key, --server1, --server1-key")
    try:
        return ClientConfig(load_keypair(key), (
            ServerAddress(server0, load_public_key(server0_key)),
            ServerAddress(server1, load_public_key(server1_key))))
    except (OSError, ValueError) as error:
        raise ClientConfigError(str(error)) from None


@owner_app.command("upload")
def owner_upload(
    data: Path = typer.Argument(..., help="CSV or Parquet file with the table's columns."),
    table: str = typer.Option(..., help="Table name in the schema."),
    schema: Path = typer.Option(..., help="The public schema (TOML)."),
    config: Path = typer.Option(None, help="owner.toml with your key and the servers."),
    key: Path = typer.Option(None, help="Your secret key file (without --config)."),
    server0: str = typer.Option(None, help="Server 0's address (without --config)."),
    server0_key: Path = typer.Option(None, help="Server 0's public key file."),
    server1: str = typer.Option(None, help="Server 1's address (without --config)."),
    server1_key: Path = typer.Option(None, help="Server 1's public key file."),
    where: str = typer.Option(None, help='Keep only rows where EXPR holds, e.g. "age >= 18".'),
    pad_to: int = typer.Option(None, help="Add dummy rows up to N (the schema may fix N)."),
    upload_id: str = typer.Option(None, help="Upload id (default: derived from the content)."),
    policy_file: Path = typer.Option(None, "--policy", help="Analysis rules (TOML); the flags "
                                                            "below override its keys."),
    recipients: str = typer.Option(None, help="Rule: clients who may receive outputs derived "
                                              "from the table, comma-separated, or * (default: "
                                              "you alone)."),
    outputs: str = typer.Option(None, help="Rule: allowed outputs among rows, aggregate, "
                                           "statistics, model, predictions (default: "
                                           "aggregate,statistics,model)."),
    analysts: str = typer.Option(None, help="Rule: clients who may submit jobs that read the "
                                            "table, or * (default: the recipients)."),
    join_columns: str = typer.Option(None, help="Rule: key columns jobs may join on "
                                                "(default: every key)."),
    dimension_columns: str = typer.Option(None, help="Rule: columns jobs may filter, group "
                                                     "by, or return in rows (default: none)."),
    aggregate_columns: str = typer.Option(None, help="Rule: columns jobs may aggregate, with "
                                                     "the functions allowed after colons, e.g. "
                                                     "amount:sum:mean,age (default: none)."),
    model_columns: str = typer.Option(None, help="Rule: columns models may read as features, "
                                                 "labels or prediction inputs (default: none)."),
    min_group_size: int = typer.Option(None, help="Rule: suppress any output that depends on "
                                                  "fewer of your entities than this (default "
                                                  "2; 1: no minimum)."),
    min_join_size: int = typer.Option(None, help="Rule: floor of the join-size check of "
                                                 "privacy levels 4 and 5."),
    min_privacy_level: int = typer.Option(None, help="Rule: the least privacy level of jobs "
                                                     "(default 4; 3 lets trainings open |J|)."),
    max_epsilon: float = typer.Option(None, help="Rule: jobs must be differentially private "
                                                 "with at most this epsilon."),
    budget_epsilon: float = typer.Option(None, help="Rule: total epsilon all differentially "
                                                    "private jobs may spend on the table."),
    budget_delta: float = typer.Option(None, help="Rule: total delta of that budget."),
    privacy_unit: str = typer.Option(None, help="Rule: the table whose entities the budget "
                                                "protects (yours, or one your rows describe)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Check every row of DATA against the schema, then send one share to each server.

    Nothing is sent unless every row passes; an error names the file, row and column."""
    settings = _owner_settings(config, key, server0, server0_key, server1, server1_key)
    parsed = load_schema(schema)
    flags = {"recipients": recipients, "analysts": analysts, "outputs": outputs,
             "join_columns": join_columns, "dimension_columns": dimension_columns,
             "aggregate_columns": aggregate_columns and parse_aggregate_flag(aggregate_columns),
             "model_columns": model_columns, "min_group_size": min_group_size,
             "min_join_size": min_join_size, "min_privacy_level": min_privacy_level,
             "max_epsilon": max_epsilon, "budget_epsilon": budget_epsilon,
             "budget_delta": budget_delta, "privacy_unit": privacy_unit}
    policy = owner_policy(parsed, parsed.table(table), policy_file,
                          {k: v for k, v in flags.items() if v is not None})
    with Progress(transient=True) as bar:
        shown: dict = {}

        def show(rows: int, total: int) -> None:  # a bar only for uploads that take a while
            if total >= 100_000:
                task = shown.setdefault("task", bar.add_task(f"upload {table}", total=total))
                bar.advance(task, rows)

        result = Client(settings).upload(data, table, parsed, policy=policy, where=where,
                                         pad_to=pad_to, upload_id=upload_id, progress=show)
    held = [status == "exists" for status in result.statuses]
    live_again = all(held) and not result.was_live
    summary = {"table": table, "upload_id": result.upload_id, "rows": result.rows,
               "real_rows": result.real_rows, "already_held": held, "live_again": live_again}
    what = ("both servers already held it; it is the live version again" if live_again else
            "both servers already held it as the live version; nothing changed" if all(held)
            else "ready on both servers")
    typer.echo(json.dumps(summary) if as_json else
               f"{table}: {result.rows} rows ({result.real_rows} real) {what}, "
               f"upload id {result.upload_id}")


def owner_policy(schema: Schema, table: Table, policy_file: Path | None,
                 flags: dict) -> Policy:
    """The policy file's rules (checked alone first, so errors name the file), then the
    flags over them."""
    settings = {}
    if policy_file is not None:
        settings = load_policy_file(policy_file)
        policy = policy_from_settings(settings, schema=schema, table=table,
                                      where=str(policy_file))
        if not flags:
            return policy
    return policy_from_settings({**settings, **flags}, schema=schema, table=table,
                                where="the upload's rules")


@owner_app.command("budget")
def owner_budget(table: str = typer.Argument(..., help="Your table."),
                 config: Path = typer.Option(..., help="owner.toml with your key and the servers."),
                 as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """The table's privacy budget: its total, what differentially private jobs have spent, and
    what is left, as each server records it."""
    replies = Client(config).budget(table)
    if as_json:
        typer.echo(json.dumps(replies))
        return
    for party, reply in enumerate(replies):
        total, spent = reply["total"], reply["spent"]
        line = (f"server {party}: {table} spent epsilon {spent['epsilon']:g}, "
                f"delta {spent['delta']:g}")
        if total is None:
            line += " (no budget set: differentially private jobs are not limited)"
        else:
            line += (f" of {total['epsilon']:g} and {total['delta']:g}; left epsilon "
                     f"{max(total['epsilon'] - spent['epsilon'], 0):g}, delta "
                     f"{max(total['delta'] - spent['delta'], 0):g}")
        typer.echo(line)
    for entry in replies[0]["history"]:
        typer.echo(f"  job {entry['job']}: epsilon {entry['epsilon']:g}, "
                   f"delta {entry['delta']:g}")


@owner_app.command("tables")
def owner_tables(config: Path = typer.Option(..., help="owner.toml with your key and the servers."),
                 as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Your tables and every version of them the servers hold: upload id, rows, when it was
    stored or made ready (server 0's clock), whether it is live, its state; and where the two
    servers disagree."""
    listings = Client(config).tables()
    differences = disagreements(listings)
    if as_json:
        typer.echo(json.dumps({"servers": listings, "disagreements": differences}))
        return
    if not listings[0]["versions"] and not listings[1]["versions"]:
        typer.echo("no tables on either server")
    for version in listings[0]["versions"]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(version["updated"]))
        typer.echo(f"{version['table']}  {version['upload_id']}  {version['rows']} rows  "
                   f"{when}  {'live' if version['live'] else 'not live'}  {version['state']}")
    for table in listings[0]["withdrawing"]:
        typer.echo(f"{table}: being withdrawn; run `twofold owner withdraw {table}` to finish")
    if differences:
        typer.echo("the servers disagree:")
        for line in differences:
            typer.echo(f"  {line}")
        raise typer.Exit(1)


@owner_app.command("withdraw")
def owner_withdraw(table: str = typer.Argument(..., help="Your table."),
                   config: Path = typer.Option(..., help="owner.toml with your key and the "
                                                         "servers.")):
    """Delete every version of TABLE on both servers. Queued jobs that read it fail, running
    ones are cancelled; the privacy budget it spent stays spent. After a failure, run it
    again: it resumes."""
    Client(config).withdraw(table)
    typer.echo(f"{table}: every version deleted on both servers")
