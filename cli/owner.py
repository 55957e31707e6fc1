"""`twofold owner ...`: what a data owner runs."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import typer
from rich.progress import Progress

from mpc.curve import load_keypair, load_public_key
from owners.config import OwnerConfig, OwnerConfigError, load_owner_config
from owners.prepare import prepare
from owners.schema import load_schema
from owners.upload import ServerAddress, dummy_prg, upload
from servers.policy import Policy

owner_app = typer.Typer(help="Validate and upload your tables as secret shares.",
                        no_args_is_help=True)


def _owner_settings(config, key, server0, server0_key, server1, server1_key) -> OwnerConfig:
    if config is not None:
        return load_owner_config(config)
    if None in (key, server0, server0_key, server1, server1_key):
        raise OwnerConfigError("give --config owner.toml, or all of --key, --server0, "
                               "--server0-key, --server1, --server1-key")
    try:
        return OwnerConfig(load_keypair(key), (
            ServerAddress(server0, load_public_key(server0_key)),
            ServerAddress(server1, load_public_key(server1_key))))
    except (OSError, ValueError) as error:
        raise OwnerConfigError(str(error)) from None


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
    recipients: str = typer.Option(None, help="Policy: only these clients (comma-separated) "
                                              "may receive outputs derived from the table."),
    min_privacy_level: int = typer.Option(3, help="Policy: the least privacy level of jobs."),
    max_epsilon: float = typer.Option(None, help="Policy: jobs must be differentially private "
                                                 "with at most this epsilon."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Check every row of DATA against the schema, then send one share to each server.

    Nothing is sent unless every row passes; an error names the file, row and column."""
    settings = _owner_settings(config, key, server0, server0_key, server1, server1_key)
    allowed = tuple(n.strip() for n in recipients.split(",") if n.strip()) if recipients else None
    policy = Policy(allowed, min_privacy_level, max_epsilon)
    parsed = load_schema(schema)
    source_digest = hashlib.sha256(Path(data).read_bytes() + repr((where, pad_to)).encode())
    prepared = prepare(data, parsed, table, where=where, pad_to=pad_to,
                       dummy_prg=dummy_prg(settings.keys, parsed, table, source_digest.digest()))
    with Progress(transient=True, disable=prepared.rows < 100_000) as bar:
        task = bar.add_task(f"upload {table}", total=prepared.rows)
        result = asyncio.run(upload(prepared, parsed, settings.keys, settings.servers,
                                    upload_id=upload_id, timeout_s=settings.timeout_s,
                                    progress=lambda rows: bar.advance(task, rows),
                                    policy=policy.to_json()))
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
