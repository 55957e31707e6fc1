"""`twofold server run`: a compute server."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer

from servers.config import load_server_config
from servers.server import Server

server_app = typer.Typer(help="Run a compute server.", no_args_is_help=True)


@server_app.command("run")
def server_run(config: Path = typer.Option(..., help="server.toml")):
    """Serve owners' uploads (and jobs) until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = Server(load_server_config(config))
    typer.echo(f"server {server.party} listening on {server.config.listen}", err=True)
    try:
        asyncio.run(server.serve())
    except KeyboardInterrupt:
        pass
