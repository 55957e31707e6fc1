"""`twofold bench ...`: benchmarks on a local dealer and two server processes."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

import typer
from rich.console import Console
from rich.table import Table

from mpc.bench import OPS
from mpc.prg import Prg
from owners.config import load_owner_config
from owners.prepare import prepare
from owners.schema import load_schema
from owners.upload import upload
from servers.local_cluster import LocalCluster

bench_app = typer.Typer(help="Measure time, bytes and rounds on a local cluster.",
                        no_args_is_help=True)


def summarize(results: list[dict], ops, n: int) -> list[dict]:
    """Median over repetitions of each op; bytes are per server (the larger of the two)."""
    rows = []
    for op in ops:
        stages = [name for name in results[0]
                  if name.startswith(f"{op}#") and name != f"{op}#warmup"]
        per_server = [[result[name] for name in stages] for result in results]
        rows.append({
            "op": op,
            "n": n,
            "online_s": statistics.median(max(s[i]["online_s"] for s in per_server)
                                          for i in range(len(stages))),
            "offline_s": statistics.median(max(s[i]["offline_s"] for s in per_server)
                                           for i in range(len(stages))),
            "bytes": max(server[0]["bytes_sent"] for server in per_server),
            "rounds": max(server[0]["rounds"] for server in per_server),
            "dealer_bytes": sum(server[0]["dealer_bytes"] for server in per_server),
        })
    return rows


def print_rows(rows: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table(title="Twofold benchmark (median; bytes sent per server)")
    columns = list(rows[0])
    for column in columns:
        table.add_column(column, justify="left" if column == "op" else "right")
    for row in rows:
        table.add_row(*(f"{row[c]:.3f}" if isinstance(row[c], float) else f"{row[c]:,}"
                        if isinstance(row[c], int) else str(row[c]) for c in columns))
    Console().print(table)


@bench_app.command("mpc")
def bench_mpc(
    n: int = typer.Option(1 << 20, help="Elements per operation (rows for shuffle and sort)."),
    repeat: int = typer.Option(3, help="Runs per operation; the median is reported."),
    ops: str = typer.Option(",".join(OPS), help="Comma-separated operations to run."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
):
    """Core protocols on a local dealer and two servers (CurveZMQ on)."""
    chosen = [op.strip() for op in ops.split(",") if op.strip()]
    unknown = set(chosen) - set(OPS)
    if unknown or n < 1 or repeat < 1:
        raise typer.BadParameter(f"ops must be among {', '.join(OPS)}; n and repeat >= 1")
    with LocalCluster() as cluster:
        results = cluster.run("bench_mpc", {"n": n, "repeat": repeat, "ops": chosen})
    print_rows(summarize(results, chosen, n), as_json)


UPLOAD_SCHEMA = """
[schema]
fact = "events"
[tables.events]
owner = "owner"
primary_key = "id"
[tables.events.columns]
id = { type = "key" }
count = { type = "integer", min = 0, max = 1000000 }
price = { type = "decimal", min = -100000, max = 100000 }
score = { type = "decimal", min = -1, max = 1 }
weight = { type = "decimal", min = 0, max = 1000 }
ratio = { type = "decimal", min = 0, max = 1 }
flag = { type = "boolean" }
kind = { type = "categorical", values = ["a", "b", "c", "d"] }
"""


def write_upload_csv(path: Path, rows: int) -> None:
    """A synthetic events table with 8 columns of every type."""
    prg = Prg.fresh()

    def uniform(low, high, digits):
        return np.round(low + (high - low) * (prg.words(rows) >> np.uint64(11)) / 2.0**53, digits)

    def integers(high):
        return (prg.words(rows) % np.uint64(high)).astype(np.int64)

    table = pa.table({
        "id": np.arange(rows), "count": integers(1000000),
        "price": uniform(-1e5, 1e5, 2), "score": uniform(-1, 1, 4),
        "weight": uniform(0, 1000, 3), "ratio": uniform(0, 1, 4),
        "flag": np.where(integers(2) == 1, "true", "false"),
        "kind": np.array(["a", "b", "c", "d"])[integers(4)]})
    pacsv.write_csv(table, path)


@bench_app.command("upload")
def bench_upload(
    rows: int = typer.Option(1_000_000, help="Rows of the 8-column CSV file."),
    repeat: int = typer.Option(3, help="Uploads (each a new version); the median is reported."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
):
    """An owner uploads a CSV file to two server processes (CurveZMQ on): read, validate,
    share, send and store durably on both, timed end to end."""
    with LocalCluster(schema_text=UPLOAD_SCHEMA, owners=("owner",)) as cluster:
        data = cluster.folder / "events.csv"
        write_upload_csv(data, rows)
        cluster.start_server(0)
        cluster.start_server(1)
        settings = load_owner_config(cluster.owner_config("owner"))
        runs = []
        for attempt in range(repeat):
            start = time.perf_counter()
            schema = load_schema(cluster.folder / "schema.toml")
            prepared = prepare(data, schema, "events")
            checked = time.perf_counter()
            result = asyncio.run(upload(prepared, schema, settings.keys, settings.servers,
                                        upload_id=f"bench-{attempt}"))
            runs.append((time.perf_counter() - start, checked - start, result))
    total = statistics.median(run[0] for run in runs)
    result = runs[0][2]
    row = {"op": "upload", "n": rows, "online_s": total, "offline_s": 0.0,
           "bytes": max(result.bytes_sent), "rounds": max(result.requests),
           "validate_s": statistics.median(run[1] for run in runs), "columns": 8}
    print_rows([row], as_json)
