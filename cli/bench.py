"""`twofold bench ...`: benchmarks on a local dealer and two server processes."""

from __future__ import annotations

import json
import statistics

import typer
from rich.console import Console
from rich.table import Table

from mpc.bench import OPS
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
    table = Table(title="Twofold MPC benchmark (median; bytes sent per server)")
    for column in ("op", "n", "online_s", "offline_s", "bytes", "rounds", "dealer_bytes"):
        table.add_column(column, justify="left" if column == "op" else "right")
    for row in rows:
        table.add_row(row["op"], str(row["n"]), f"{row['online_s']:.3f}",
                      f"{row['offline_s']:.3f}", f"{row['bytes']:,}", str(row["rounds"]),
                      f"{row['dealer_bytes']:,}")
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
