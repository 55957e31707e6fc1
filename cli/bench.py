"""`twofold bench ...`: benchmarks on a local dealer and two server processes."""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import typer
from rich.console import Console
from rich.table import Table

from cli import oulad, tpch
from mpc.bench import OPS
from mpc.prg import Prg
from mpc.session import CORRELATIONS
from owners.policy import ANYONE, OUTPUT_KINDS, Policy
from owners.prepare import prepare
from owners.schema import load_schema
from owners.upload import upload
from servers.local_cluster import LocalCluster
from twofold.client import Client
from twofold.config import load_client_config

bench_app = typer.Typer(help="Measure time, bytes and rounds on a local cluster.",
                        no_args_is_help=True)
STATUS = Console(stderr=True)
BENCH_POLICY = Policy(recipients=(ANYONE,), outputs=OUTPUT_KINDS)  # synthetic data: no limits


def phase(text: str):
    """A spinner on stderr naming what runs (benchmarks take minutes)."""
    return STATUS.status(text)


def summarize(results: list[dict], ops, n: int) -> list[dict]:
    """Median over repetitions of each op, each from the server with the longest wall time.
    Offline bytes: what both servers sent each other to make the op's correlations (OT)."""
    rows = []
    for op in ops:
        stages = [name for name in results[0]
                  if name.startswith(f"{op}#") and name != f"{op}#warmup"]
        per_run = [_slowest(results, [name]) for name in stages]
        rows.append({"op": op, "n": n,
                     "online_s": statistics.median(r["online_s"] for r in per_run),
                     "offline_s": statistics.median(r["offline_s"] for r in per_run),
                     "bytes": per_run[0]["bytes"], "rounds": per_run[0]["rounds"],
                     "dealer_bytes": sum(result[stages[0]]["dealer_bytes"] for result in results),
                     "offline_bytes": sum(result[stages[0]]["offline_bytes"]
                                          for result in results)})
    return rows


def correlation_rows(reports: list[dict]) -> list[dict]:
    """Per kind of correlation made by OT, over the whole benchmark: elements made, COTs and
    bytes (both servers, extension included) per element, and the slower server's seconds."""
    rows = []
    for kind in sorted(reports[0]):
        both = [report[kind] for report in reports]
        elements = both[0]["elements"]
        cots = sum(costs["cots_received"] for costs in both)
        sent = sum(costs["correction_bytes"] + costs["extension_bytes"] for costs in both)
        rows.append({"op": f"make {kind}", "n": elements,
                     "cots_per_element": round(cots / max(elements, 1), 2),
                     "bytes_per_element": round(sent / max(elements, 1), 1),
                     "seconds": max(costs["seconds"] for costs in both)})
    return rows


def print_rows(rows: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    groups: dict[tuple, list[dict]] = {}  # one table per kind of row
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    for columns, group in groups.items():
        table = Table(title="Twofold benchmark (median; bytes sent per server)"
                      if "online_s" in columns else "Correlations made by OT (both servers)")
        for column in columns:
            table.add_column(column, justify="left" if column == "op" else "right")
        for row in group:
            table.add_row(*(f"{row[c]:.3f}" if isinstance(row[c], float) else f"{row[c]:,}"
                            if isinstance(row[c], int) else str(row[c]) for c in columns))
        Console().print(table)


@bench_app.command("mpc")
def bench_mpc(
    n: int = typer.Option(1 << 20, help="Elements per operation (rows for shuffle and sort)."),
    repeat: int = typer.Option(3, help="Runs per operation; the median is reported."),
    ops: str = typer.Option(",".join(OPS), help="Comma-separated operations to run."),
    correlations: str = typer.Option("dealer", help='"dealer", or "ot": the two servers make '
                                     "correlations themselves (also reports their cost)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
):
    """Core protocols on two servers (CurveZMQ on), with a local dealer or with OT."""
    chosen = [op.strip() for op in ops.split(",") if op.strip()]
    unknown = set(chosen) - set(OPS)
    if unknown or n < 1 or repeat < 1 or correlations not in CORRELATIONS:
        raise typer.BadParameter(f"ops must be among {', '.join(OPS)}; n and repeat >= 1; "
                                 f"correlations one of {', '.join(CORRELATIONS)}")
    with phase(f"mpc protocols ({correlations}), n = {n}: {', '.join(chosen)}"), \
            LocalCluster(correlations=correlations) as cluster:
        results = cluster.run("bench_mpc", {"n": n, "repeat": repeat, "ops": chosen})
    rows = summarize([result["stages"] for result in results], chosen, n)
    if correlations == "ot":
        rows += correlation_rows([result["correlations"] for result in results])
    print_rows(rows, as_json)


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
    with phase(f"upload of {rows} rows x 8 columns"), \
            LocalCluster(schema_text=UPLOAD_SCHEMA, owners=("owner",)) as cluster:
        data = cluster.folder / "events.csv"
        write_upload_csv(data, rows)
        cluster.start_server(0)
        cluster.start_server(1)
        settings = load_client_config(cluster.owner_config("owner"))
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


def _slowest(stages_by_server: list[dict], names: list[str]) -> dict:
    """Costs of the named stages on the server whose wall time is longest: its online and
    dealer (offline) parts add up to the wall time, with no wait counted twice."""
    totals = [{key: sum(stages[n][key] for n in names)
               for key in ("wall_s", "offline_s", "bytes_sent", "rounds")}
              for stages in stages_by_server]
    slowest = max(totals, key=lambda t: t["wall_s"])
    return {"online_s": slowest["wall_s"] - slowest["offline_s"],
            "offline_s": slowest["offline_s"],
            "bytes": max(t["bytes_sent"] for t in totals),
            "rounds": max(t["rounds"] for t in totals)}


def stage_rows(op: str, n: int, runs: list[list[dict]]) -> list[dict]:
    """A total row and one row per stage, medians over runs; runs[r][server] = stages."""
    names = [name for name in runs[0][0] if name not in ("inputs", "default", "agree")]
    rows = []
    for label, chosen in [(op, names)] + [(f"{op}.{name}", [name]) for name in names]:
        per_run = [_slowest(run, chosen) for run in runs]
        rows.append({"op": label, "n": n,
                     **{key: statistics.median(r[key] for r in per_run)
                        for key in ("online_s", "offline_s")},
                     **{key: int(statistics.median(r[key] for r in per_run))
                        for key in ("bytes", "rounds")}})
    return rows


def tpch_runs(scale: float, repeat: int, spec: str) -> tuple[int, list[list[dict]]]:
    """A TPC-H query job on a local dealer and two server processes; stage costs per run."""
    with tempfile.TemporaryDirectory() as folder:
        frames = tpch.generate(Path(folder), scale)
        rows = sum(len(frame) for frame in frames.values())
        with LocalCluster(timeout_s=600, schema_text=tpch.schema_text(frames),
                          owners=("alice", "bob", "carol")) as cluster:
            cluster.start_all()
            cluster.upload_all(Path(folder), BENCH_POLICY)
            carol = Client(cluster.owner_config("carol"))
            runs = []
            for _ in range(repeat):
                statuses = carol.wait(carol.submit(spec), timeout_s=3600)
                runs.append([{k: v for k, v in s["costs"].items() if k != "agree"}
                             for s in statuses])
    return rows, runs


@bench_app.command("join")
def bench_join(
    left: int = typer.Option(1 << 20, help="Rows of R (foreign keys) in the binary join."),
    right: int = typer.Option(1 << 18, help="Rows of S (primary keys) in the binary join."),
    scale: float = typer.Option(0.1, help="TPC-H scale factor for the Q5-shaped join (0: skip)."),
    repeat: int = typer.Option(1, help="Runs of each; the median is reported."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
):
    """The binary join and a TPC-H Q5-shaped join on a local dealer and two servers
    (CurveZMQ on): totals and time, bytes and rounds per stage."""
    with phase(f"binary join {left} x {right}: sort, propagate, compact"), \
            LocalCluster() as cluster:
        results = cluster.run("bench_join", {"left_rows": left, "right_rows": right,
                                             "repeat": repeat})
    rows = stage_rows("join_binary", left + right, [list(run) for run in zip(*results)])
    if scale > 0:
        with phase(f"TPC-H Q5-shaped join at SF {scale:g}: generate, upload, join"):
            tpch_rows, runs = tpch_runs(scale, repeat, tpch.Q5_SPEC)
        rows += stage_rows("tpch_q5", tpch_rows, runs)
    print_rows(rows, as_json)


def oulad_runs(iterations: int, epsilons) -> tuple[int, list, list]:
    """The OULAD-shaped pipeline on a local cluster: uploads (untimed), then per epsilon a
    training job from submission to the recipient holding the model."""
    with LocalCluster(timeout_s=600, schema_text=oulad.SCHEMA,
                      owners=("university", "agency", "analyst")) as cluster:
        generated = oulad.generate(cluster.folder)
        cluster.start_all()
        cluster.upload_all(cluster.folder, BENCH_POLICY)
        analyst = Client(cluster.owner_config("analyst"))
        runs, table = [], []
        for epsilon in epsilons:
            spec = oulad.training_spec(epsilon, iterations, int(0.8 * len(generated["joined"])))
            start = time.perf_counter()
            statuses = []
            model = analyst.run(spec, on_status=lambda seen: statuses.__setitem__(
                slice(None), seen)).data
            elapsed = time.perf_counter() - start
            runs.append(([{k: v for k, v in s["costs"].items() if k != "agree"}
                          for s in statuses], elapsed))
            ledger = model["info"]["dp_ledger"]
            table.append({"epsilon": "inf" if epsilon is None else epsilon,
                          "mpc_accuracy": oulad.model_accuracy(generated["joined"], model),
                          "plaintext_accuracy": oulad.plaintext_accuracy(
                              generated["joined"], ledger, iterations),
                          "sigma": ledger["sigma"] if ledger else 0.0})
    return generated["rows"], runs, table


@bench_app.command("ml")
def bench_ml(
    rows: int = typer.Option(1 << 16, help="Rows to purify."),
    columns: int = typer.Option(16, help="Columns to purify."),
    batch: int = typer.Option(128, help="SGD batch size."),
    features: int = typer.Option(784, help="SGD features."),
    iterations: int = typer.Option(3000, help="Iterations of the OULAD-shaped training."),
    repeat: int = typer.Option(3, help="Runs of purify and sgd_iter; the median is reported."),
    accuracy_table: bool = typer.Option(False, "--table",
                                        help="Also train at epsilon 0.1 .. 10 and infinity."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
):
    """Purification, one SGD iteration, and the OULAD-shaped pipeline (level 5, join through
    model release) on a local dealer and two servers (CurveZMQ on)."""
    with phase("purify and one SGD iteration"), LocalCluster() as cluster:
        results = cluster.run("bench_ml", {"rows": rows, "columns": columns, "batch": batch,
                                           "features": features, "repeat": repeat})
    out = summarize(results, ["purify"], rows) + summarize(results, ["sgd_iter"], batch)
    for row in out:
        row.pop("dealer_bytes")
    epsilons = [1.0] + ([0.1, 0.5, 2.0, 5.0, 10.0, None] if accuracy_table else [])
    with phase(f"OULAD-shaped pipeline: join, tau, train ({len(epsilons)} job(s))"):
        tuples, runs, table = oulad_runs(iterations, epsilons)
    stages, elapsed = runs[0]
    total = stage_rows("oulad_pipeline", tuples, [stages])
    total[0]["online_s"] = elapsed - total[0]["offline_s"]  # submission to model in hand
    out += total
    if as_json:
        print(json.dumps(out + ([{"op": "accuracy", **row} for row in table]
                                if accuracy_table else []), indent=1))
        return
    print_rows(out, False)
    if accuracy_table:
        typer.echo("| epsilon | MPC accuracy | plaintext accuracy | sigma |")
        typer.echo("| --- | --- | --- | --- |")
        for row in sorted(table, key=lambda r: float(r["epsilon"])):
            typer.echo(f"| {row['epsilon']} | {row['mpc_accuracy']:.4f} | "
                       f"{row['plaintext_accuracy']:.4f} | {row['sigma']:.3f} |")


def _markdown(sections: dict[str, list[dict]]) -> str:
    """Like the seed paper's Table 3: per pipeline and stage, time, bytes and rounds."""
    lines = ["| pipeline | stage | seconds: online + dealer | MB per server | rounds |",
             "| --- | --- | --- | --- | --- |"]
    for name, rows in sections.items():
        for row in rows:
            stage = row["op"].split(".", 1)[1] if "." in row["op"] else "**total**"
            lines.append(f"| {name} | {stage} | {row['online_s'] + row['offline_s']:.2f} "
                         f"({row['online_s']:.2f} + {row['offline_s']:.2f}) | "
                         f"{row['bytes'] / 1e6:.1f} | {row['rounds']} |")
    return "\n".join(lines) + "\n"


def _plot(points: list[tuple[int, float]], path: Path) -> None:
    import matplotlib  # only the pipeline benchmark draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = np.array([p[0] for p in points], dtype=float)
    seconds = np.array([p[1] for p in points])
    figure, axes = plt.subplots(figsize=(6, 4.5))
    axes.loglog(sizes, seconds, "o-", label="binary join (online + dealer)")
    anchor = sizes[-1]
    for label, shape in (("n log n", sizes * np.log2(sizes)),
                         ("n log^2 n", sizes * np.log2(sizes) ** 2)):
        reference = shape / (anchor * np.log2(anchor) ** (1 if label == "n log n" else 2))
        axes.loglog(sizes, reference * seconds[-1], "--", label=label)
    axes.set_xlabel("rows |R| + |S| (|S| = |R| / 4)")
    axes.set_ylabel("seconds")
    axes.set_title("Twofold: binary join on shares, 2 cores, loopback")
    axes.legend()
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


@bench_app.command("pipeline")
def bench_pipeline(
    out: Path = typer.Option(Path("twofold-bench"), help="Folder for table.md and joins.png."),
    scale: float = typer.Option(0.1, help="TPC-H scale factor for Q3 and Q5."),
    iterations: int = typer.Option(3000, help="Iterations of the OULAD-shaped training."),
    smallest: int = typer.Option(12, help="log2 of the smallest join in the plot."),
    largest: int = typer.Option(20, help="log2 of the largest join in the plot."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
):
    """The OULAD-shaped pipeline and TPC-H Q3/Q5 per stage (a markdown table like the seed
    paper's Table 3) and join time against rows from 2^12 to 2^20 (a log-log PNG)."""
    out.mkdir(parents=True, exist_ok=True)
    sections = {}
    with phase("OULAD-shaped pipeline: join, tau, train"):
        tuples, runs, _ = oulad_runs(iterations, [1.0])
    stages, elapsed = runs[0]
    sections["OULAD-shaped, level 5"] = stage_rows("oulad_pipeline", tuples, [stages])
    for name, spec in (("TPC-H Q3", tpch.Q3_SPEC), ("TPC-H Q5", tpch.Q5_SPEC)):
        with phase(f"{name} at SF {scale:g}: generate, upload, join, aggregate"):
            rows, job_runs = tpch_runs(scale, 1, spec)
        sections[f"{name}, SF {scale:g}"] = stage_rows(name.lower().replace(" ", "_")
                                                      .replace("-", ""), rows, job_runs)
    points = []
    with phase(f"binary joins of 2^{smallest} .. 2^{largest} rows"), LocalCluster() as cluster:
        for exponent in range(smallest, largest + 1):
            left = 1 << exponent
            (total, *_), = [stage_rows("join", left + left // 4, [list(run) for run in zip(
                *cluster.run("bench_join", {"left_rows": left, "right_rows": left // 4,
                                            "repeat": 1}))])]
            points.append((left + left // 4, total["online_s"] + total["offline_s"]))
    (out / "table.md").write_text(_markdown(sections))
    _plot(points, out / "joins.png")
    rows = [row for section in sections.values() for row in section]
    rows += [{"op": "join_scaling", "n": n, "online_s": s, "offline_s": 0.0, "bytes": 0,
              "rounds": 0} for n, s in points]
    if as_json:
        print(json.dumps(rows, indent=1))
    else:
        typer.echo((out / "table.md").read_text())
        typer.echo(f"plot: {out / 'joins.png'}")
