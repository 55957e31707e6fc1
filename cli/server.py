"""`twofold server run`: a compute server; `twofold server preprocess`: correlated randomness
made ahead, in idle time (OT mode)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer

from twofold.ml.dp import accountant_library
from twofold.mpc.files import private_files
from twofold.mpc.ot.store import exclusive
from twofold.servers.config import ConfigError, load_server_config, load_server_endpoints
from twofold.servers.preprocessing import preprocess
from twofold.servers.server import Server

server_app = typer.Typer(help="Run a compute server.", no_args_is_help=True)


@server_app.command("run")
def server_run(config: Path = typer.Option(..., help="server.toml")):
    """Serve owners' uploads (and jobs) until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    private_files()
    server = Server(load_server_config(config))
    accountant_library()  # imported now, not in the first private job
    typer.echo(f"server {server.party} listening on {server.config.listen}", err=True)
    try:
        asyncio.run(server.serve())
    except KeyboardInterrupt:
        pass


@server_app.command("preprocess")
def server_preprocess(
    config: Path = typer.Option(..., help="server.toml (with correlations = \"ot\")"),
    cots: int = typer.Option(1 << 23, help="COTs per direction the store should hold (about "
                                           "17 bytes each per server; the smaller of the two "
                                           "servers' values counts)."),
):
    """Make random correlated OTs with the other server now, for later jobs to use first. Run
    it on both hosts at once while their servers are stopped (it uses the job link); running
    servers do the same by themselves while idle, with idle_cots in their configs."""
    private_files()
    endpoints = load_server_endpoints(config)
    if endpoints.correlations != "ot" or endpoints.cot_store is None:
        raise ConfigError(f"{config}: preprocessing needs correlations = \"ot\"")
    with exclusive(endpoints.cot_store):
        made = asyncio.run(preprocess(endpoints, cots))
    typer.echo(f"made {made} COTs per direction; store: {endpoints.cot_store}", err=True)
