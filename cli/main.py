"""The `twofold` command: keys, server, dealer, owner, job, reveal, query, bench."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import typer

from twofold.bench.commands import bench_app
from twofold.cli.audit import audit_app, job_receipt, owner_audit
from twofold.cli.demo import demo
from twofold.cli.job import job_app, query_command, reveal_command
from twofold.cli.owner import owner_app
from twofold.cli.server import server_app
from twofold.mpc.allocator import keep_large_blocks
from twofold.mpc.curve import generate_keypair
from twofold.mpc.dealer import Dealer
from twofold.mpc.errors import TwofoldError
from twofold.mpc.files import private_files
from twofold.mpc.signing import generate_signing_keypair
from twofold.servers.config import load_dealer_config

app = typer.Typer(help="Twofold: statistics and models over the join of secret-shared tables.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
keys_app = typer.Typer(help="CurveZMQ and signing key pairs.", no_args_is_help=True)
dealer_app = typer.Typer(help="The dealer of correlated randomness.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(dealer_app, name="dealer")
app.add_typer(server_app, name="server")
app.add_typer(owner_app, name="owner")
app.add_typer(job_app, name="job")
app.add_typer(audit_app, name="audit")
owner_app.command("audit")(owner_audit)  # beside the owner's and the recipient's commands
job_app.command("receipt")(job_receipt)
app.command("reveal")(reveal_command)
app.command("query")(query_command)
app.command("demo")(demo)
app.add_typer(bench_app, name="bench")


@keys_app.command("generate")
def keys_generate(name: str, directory: Path = typer.Option(Path("."), "--dir")):
    """Write NAME.key (public, share it) and NAME.key_secret (mode 0600, keep it); and a
    server's audit log signing pair: NAME.sign (its verify key, for clients) and
    NAME.sign_secret (0600)."""
    paths = [*generate_keypair(directory, name), *generate_signing_keypair(directory, name)]
    typer.echo("\n".join(map(str, paths)))


@dealer_app.command("run")
def dealer_run(config: Path = typer.Option(..., help="dealer.toml")):
    """Serve correlated randomness to the two servers named in the config."""
    private_files()
    settings = load_dealer_config(config)
    dealer = Dealer(settings.keys, settings.server_publics, settings.listen)
    typer.echo(f"dealer listening on {settings.listen}", err=True)
    try:
        asyncio.run(dealer.serve())
    except KeyboardInterrupt:
        pass


def main() -> None:
    """Entry point: known failures become one line on stderr and exit code 1."""
    keep_large_blocks()
    try:
        app()
    except (TwofoldError, OSError) as error:
        typer.echo(f"twofold: {error}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
