"""`twofold server run`: a compute server; `twofold server preprocess`: correlated randomness
made ahead, in idle time (OT mode)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

import typer

from mpc.ot.store import CotStore, fill
from mpc.session import Endpoints, open_party
from servers.config import ConfigError, load_server_config, load_server_endpoints
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


async def preprocess(endpoints: Endpoints, target: int) -> int:
    """One preprocessing session with the peer; returns the COTs made per direction."""
    fresh_only = dataclasses.replace(endpoints, cot_store=None)  # never consumes the store
    async with open_party(fresh_only, "twofold-preprocess") as party:
        return await fill(party.corr, CotStore(endpoints.cot_store), target)


@server_app.command("preprocess")
def server_preprocess(
    config: Path = typer.Option(..., help="server.toml (with correlations = \"ot\")"),
    cots: int = typer.Option(1 << 23, help="COTs per direction the store should hold (about "
                                           "17 bytes each per server; the smaller of the two "
                                           "servers' values counts)."),
):
    """Make random correlated OTs with the other server now, for later jobs to use first. Run
    it on both servers at once, while no job runs (it uses the job link)."""
    endpoints = load_server_endpoints(config)
    if endpoints.correlations != "ot":
        raise ConfigError(f"{config}: preprocessing needs correlations = \"ot\"")
    made = asyncio.run(preprocess(endpoints, cots))
    typer.echo(f"made {made} COTs per direction; store: {endpoints.cot_store}", err=True)
