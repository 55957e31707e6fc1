"""`twofold bench ...`: benchmarks on a local dealer and two server processes (CurveZMQ on).

Every command runs what it measures `--repeat` times (default 3) and reports the median, min
and max seconds (bench/report.py), with the machine's core count and package versions; how to
run each one, and what it measures, is in docs/benchmarks.md."""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import typer
from rich.console import Console

from twofold.bench import oulad, tpch
from twofold.bench.protocols import OPS
from twofold.bench.report import print_report, row, slowest, stage_rows
from twofold.cli.local_cluster import LocalCluster
from twofold.client import Client
from twofold.config import load_client_config
from twofold.mpc.prg import Prg
from twofold.mpc.session import CORRELATIONS
from twofold.owners.policy import unrestricted
from twofold.owners.prepare import prepare
from twofold.owners.schema import load_schema
from twofold.owners.upload import upload

bench_app = typer.Typer(help="Measure time, bytes and rounds on a local cluster.",
                        no_args_is_help=True)
STATUS = Console(stderr=True)
BENCH_POLICY = unrestricted()  # synthetic data: no limits
UPLOAD_SCHEMA = Path(__file__).parent / "data" / "events.toml"
REPEAT_HELP = "Runs of each measurement; the median, min and max are reported."
JSON_HELP = "Print JSON ({machine, rows}) instead of tables."
CORRELATIONS_HELP = ('"dealer", or "ot": the two servers make correlations themselves (also '
                     "reports their cost).")


def phase(text: str):
    """A spinner on stderr naming what runs (benchmarks take minutes)."""
    return STATUS.status(text)


def check_repeat(repeat: int) -> None:
    if repeat < 1:
        raise typer.BadParameter("--repeat must be at least 1")


def check_correlations(correlations: str) -> None:
    if correlations not in CORRELATIONS:
        raise typer.BadParameter(f"--correlations must be one of {', '.join(CORRELATIONS)}")


def op_rows(stages_by_server: list[dict], ops, n: int) -> list[dict]:
    """One row per op, from its stages op#0, op#1, ... (the warm-up run left out)."""
    rows = []
    for op in ops:
        names = [name for name in stages_by_server[0]
                 if name.startswith(f"{op}#") and name != f"{op}#warmup"]
        runs = [slowest(stages_by_server, [name]) for name in names]
        first = names[0]
        rows.append(row(op, n, runs,
                        dealer_bytes=sum(stages[first]["dealer_bytes"]
                                         for stages in stages_by_server),
                        offline_bytes=sum(stages[first]["offline_bytes"]
                                          for stages in stages_by_server)))
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




@bench_app.command("mpc")
def bench_mpc(
    n: int = typer.Option(1 << 20, help="Elements per operation (rows for shuffle and sort)."),
    repeat: int = typer.Option(3, help=REPEAT_HELP),
    ops: str = typer.Option(",".join(OPS), help="Comma-separated operations to run."),
    correlations: str = typer.Option("dealer", help=CORRELATIONS_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Core protocols on two servers, with a local dealer or with OT: seconds online and
    waiting for correlations (made ahead for every op but the sorts), bytes and rounds."""
    check_repeat(repeat)
    chosen = [op.strip() for op in ops.split(",") if op.strip()]
    unknown = set(chosen) - set(OPS)
    if unknown or n < 1:
        raise typer.BadParameter(f"ops must be among {', '.join(OPS)}; n >= 1")
    check_correlations(correlations)
    with phase(f"mpc protocols ({correlations}), n = {n}: {', '.join(chosen)}"), \
            LocalCluster(correlations=correlations) as cluster:
        results = cluster.run("bench_mpc", {"n": n, "repeat": repeat, "ops": chosen})
    rows = op_rows([result["stages"] for result in results], chosen, n)
    if correlations == "ot":
        rows += correlation_rows([result["correlations"] for result in results])
    print_report(rows, as_json)


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
    repeat: int = typer.Option(3, help=REPEAT_HELP + " Each upload is a new version."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """An owner uploads a CSV file to two server processes: read, validate, share, send,
    store durably and check on shares on both, timed end to end (validate_s: the owner's
    reading and checking alone; verify_s: the activation, the servers' check included)."""
    check_repeat(repeat)
    with phase(f"upload of {rows} rows x 8 columns"), \
            LocalCluster(schema_text=UPLOAD_SCHEMA.read_text(), owners=("owner",)) as cluster:
        data = cluster.folder / "events.csv"
        write_upload_csv(data, rows)
        cluster.start_server(0)
        cluster.start_server(1)
        settings = load_client_config(cluster.owner_config("owner"))
        runs, checking, verifying = [], [], []
        for attempt in range(repeat):
            start = time.perf_counter()
            schema = load_schema(cluster.folder / "schema.toml")
            prepared = prepare(data, schema, "events")
            checking.append(time.perf_counter() - start)
            result = asyncio.run(upload(prepared, schema, settings.keys, settings.servers,
                                        upload_id=f"bench-{attempt}"))
            seconds = time.perf_counter() - start
            verifying.append(result.check_s)
            runs.append({"seconds": seconds, "online_s": seconds, "offline_s": 0.0,
                         "bytes": max(result.bytes_sent), "rounds": max(result.requests)})
    print_report([row("upload", rows, runs, validate_s=float(np.median(checking)),
                      verify_s=float(np.median(verifying)), columns=8)], as_json)


def tpch_runs(scale: float, repeat: int, spec: str,
              policy=BENCH_POLICY) -> tuple[int, list, list[float], list]:
    """A TPC-H query job on a local dealer and two server processes, `repeat` times, every
    table under `policy`: (rows, stage costs per run and server, seconds from submission to
    revealed result per run, each server's peak memory)."""
    with tempfile.TemporaryDirectory() as folder:
        frames = tpch.generate(Path(folder), scale)
        rows = sum(len(frame) for frame in frames.values())
        with LocalCluster(timeout_s=3600, schema_text=(Path(folder) / "schema.toml").read_text(),
                          owners=("alice", "bob", "carol")) as cluster:
            cluster.start_all()
            cluster.upload_all(Path(folder), policy)
            carol = Client(cluster.owner_config("carol"))
            runs, elapsed = [], []
            for _ in range(repeat):
                seen: list[dict] = []
                start = time.perf_counter()
                carol.run(spec, timeout_s=3600,
                          on_status=lambda statuses, seen=seen: seen.__setitem__(
                              slice(None), statuses))
                elapsed.append(time.perf_counter() - start)
                runs.append([status["costs"] for status in seen])
            peaks = cluster.peak_memory()
    return rows, runs, elapsed, peaks


@bench_app.command("join")
def bench_join(
    left: int = typer.Option(1 << 20, help="Rows of R (foreign keys) in the binary join."),
    right: int = typer.Option(1 << 18, help="Rows of S (primary keys) in the binary join."),
    key_bits: int = typer.Option(63, help="Bits of the binary join's keys (the declared "
                                          "domain plus one, 63 for undeclared keys)."),
    scale: float = typer.Option(0.1, help="TPC-H scale factor for the Q5-shaped job (0: skip)."),
    min_group_size: int = typer.Option(1, help="Every owner's minimum group size in the "
                                               "Q5-shaped job (1: none)."),
    repeat: int = typer.Option(3, help=REPEAT_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """The binary join, and a TPC-H Q5-shaped job from submission to revealed result (seconds)
    with its stages and each server's peak memory; per stage, online + waiting for
    correlations."""
    check_repeat(repeat)
    if not 2 <= key_bits <= 63 or left < 1 or right < 1:
        raise typer.BadParameter("key bits must be in 2..63, row counts positive")
    with phase(f"binary join {left} x {right}, {key_bits}-bit keys: sort, propagate, "
               "compact"), LocalCluster() as cluster:
        results = cluster.run("bench_join", {"left_rows": left, "right_rows": right,
                                             "key_bits": key_bits, "repeat": repeat})
    rows = stage_rows("join_binary", left + right,
                      [list(run) for run in zip(*results, strict=True)])
    if scale > 0:
        with phase(f"TPC-H Q5-shaped job at SF {scale:g}: generate, upload, join, aggregate"):
            tpch_rows, runs, elapsed, peaks = tpch_runs(
                scale, repeat, tpch.Q5_SPEC, replace(BENCH_POLICY, min_group_size=min_group_size))
        rows += stage_rows("tpch_q5", tpch_rows, runs, elapsed, peak_memory=max(peaks))
    print_report(rows, as_json)


def oulad_runs(iterations: int, epsilons,
               correlations: str = "dealer") -> tuple[int, list, list[float], list]:
    """The OULAD-shaped pipeline on a local cluster: uploads (untimed), then per epsilon a
    training job from submission to the recipient holding the model: (tuples, stage costs per
    run and server, seconds per run, accuracy per run)."""
    with LocalCluster(timeout_s=600, schema_text=oulad.SCHEMA.read_text(),
                      owners=("university", "agency", "analyst"),
                      correlations=correlations) as cluster:
        generated = oulad.generate(cluster.folder)
        cluster.start_all()
        cluster.upload_all(cluster.folder, BENCH_POLICY)
        analyst = Client(cluster.owner_config("analyst"))
        runs, elapsed, table = [], [], []
        for epsilon in epsilons:
            spec = oulad.training_spec(epsilon, iterations, len(generated["joined"]))
            seen: list[dict] = []
            start = time.perf_counter()
            model = analyst.run(spec, on_status=lambda statuses, seen=seen: seen.__setitem__(
                slice(None), statuses)).data
            elapsed.append(time.perf_counter() - start)
            runs.append([status["costs"] for status in seen])
            ledger = model["info"]["dp_ledger"]
            table.append({"epsilon": "inf" if epsilon is None else epsilon,
                          "mpc_accuracy": oulad.model_accuracy(generated["joined"], model),
                          "plaintext_accuracy": oulad.plaintext_accuracy(
                              generated["joined"], ledger, iterations),
                          "sigma": ledger["sigma"] if ledger else 0.0})
    return generated["rows"], runs, elapsed, table


def per_iteration(runs: list[dict], iterations: int) -> list[dict]:
    return [{key: value / iterations for key, value in run.items()} for run in runs]


@bench_app.command("ml")
def bench_ml(
    rows: int = typer.Option(1 << 16, help="Rows to purify."),
    columns: int = typer.Option(16, help="Columns to purify."),
    lr_rows: int = typer.Option(4950, help="Rows of the logistic regression."),
    lr_features: int = typer.Option(7, help="Features of the logistic regression."),
    lr_iterations: int = typer.Option(2500, help="Iterations of the logistic regression."),
    batch: int = typer.Option(128, help="Batch size of both trainings."),
    features: int = typer.Option(784, help="Features of the per-iteration training."),
    sgd_rows: int = typer.Option(1024, help="Rows of the per-iteration training."),
    sgd_iterations: int = typer.Option(100, help="Iterations of the per-iteration training."),
    iterations: int = typer.Option(3000, help="Iterations of the OULAD-shaped training."),
    repeat: int = typer.Option(3, help=REPEAT_HELP),
    accuracy_table: bool = typer.Option(False, "--table",
                                        help="Also train at epsilon 0.1 .. 10 and infinity."),
    correlations: str = typer.Option("dealer", help=CORRELATIONS_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Purification; logistic regression (train_lr: the whole training, correlations
    included); one SGD iteration at batch x features (sgd_iter: a training's time per
    iteration); and the OULAD-shaped pipeline (level 5, submission to the model in hand)."""
    check_repeat(repeat)
    check_correlations(correlations)
    trainings = [{"name": "train_lr", "rows": lr_rows, "features": lr_features,
                  "batch": batch, "iterations": lr_iterations},
                 {"name": "sgd", "rows": sgd_rows, "features": features, "batch": batch,
                  "iterations": sgd_iterations}]
    with phase(f"purify, logistic regression and SGD iterations ({correlations})"), \
            LocalCluster(correlations=correlations) as cluster:
        results = cluster.run("bench_ml", {"rows": rows, "columns": columns,
                                           "trainings": trainings, "repeat": repeat})
    purify_row, lr_row, sgd_row = op_rows(results, ["purify", "train_lr", "sgd"], rows)
    lr_row.update(n=lr_rows, iterations=lr_iterations)
    sgd_runs = [slowest(results, [f"sgd#{rep}"]) for rep in range(repeat)]
    out = [purify_row, lr_row, row("sgd_iter", batch, per_iteration(sgd_runs, sgd_iterations),
                                   features=features)]
    epsilons = [1.0] * repeat + ([0.1, 0.5, 2.0, 5.0, 10.0, None] if accuracy_table else [])
    with phase(f"OULAD-shaped pipeline: join, tau, train ({len(epsilons)} job(s))"):
        tuples, runs, elapsed, table = oulad_runs(iterations, epsilons, correlations)
    out += stage_rows("oulad_pipeline", tuples, runs[:repeat], elapsed[:repeat])
    if accuracy_table:
        out += [{"op": "accuracy", **entry} for entry in table[repeat:]]
    print_report(out, as_json)


def _markdown(sections: dict[str, list[dict]]) -> str:
    """Like the seed paper's Table 3: per pipeline and stage, time, bytes and rounds."""
    lines = ["| pipeline | stage | seconds (min, max): online + correlations | MB per server "
             "| rounds |", "| --- | --- | --- | --- | --- |"]
    for name, rows in sections.items():
        for entry in rows:
            stage = entry["op"].split(".", 1)[1] if "." in entry["op"] else "**total**"
            lines.append(f"| {name} | {stage} | {entry['seconds']:.2f} ({entry['min_s']:.2f}, "
                         f"{entry['max_s']:.2f}): {entry['online_s']:.2f} + "
                         f"{entry['offline_s']:.2f} | {entry['bytes'] / 1e6:.1f} | "
                         f"{entry['rounds']} |")
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
    repeat: int = typer.Option(3, help=REPEAT_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """The OULAD-shaped pipeline and TPC-H Q3/Q5 per stage (a markdown table like the seed
    paper's Table 3) and join time against rows from 2^12 to 2^20 (a log-log PNG)."""
    check_repeat(repeat)
    out.mkdir(parents=True, exist_ok=True)
    sections = {}
    with phase("OULAD-shaped pipeline: join, tau, train"):
        tuples, runs, elapsed, _ = oulad_runs(iterations, [1.0] * repeat)
    sections["OULAD-shaped, level 5"] = stage_rows("oulad_pipeline", tuples, runs, elapsed)
    for name, spec in (("TPC-H Q3", tpch.Q3_SPEC), ("TPC-H Q5", tpch.Q5_SPEC)):
        with phase(f"{name} at SF {scale:g}: generate, upload, join, aggregate"):
            rows, job_runs, job_elapsed, peaks = tpch_runs(scale, repeat, spec)
        sections[f"{name}, SF {scale:g}"] = stage_rows(
            name.lower().replace(" ", "_").replace("-", ""), rows, job_runs, job_elapsed,
            peak_memory=max(peaks))
    points = []
    with phase(f"binary joins of 2^{smallest} .. 2^{largest} rows"), LocalCluster() as cluster:
        for exponent in range(smallest, largest + 1):
            left = 1 << exponent
            results = cluster.run("bench_join", {"left_rows": left, "right_rows": left // 4,
                                                 "key_bits": 63, "repeat": repeat})
            total = stage_rows("join", left + left // 4,
                               [list(run) for run in zip(*results, strict=True)])[0]
            points.append((left + left // 4, total["seconds"]))
    (out / "table.md").write_text(_markdown(sections))
    _plot(points, out / "joins.png")
    report = [entry for section in sections.values() for entry in section]
    report += [{"op": "join_scaling", "n": n, "seconds": s} for n, s in points]
    if as_json:
        print_report(report, True)
    else:
        typer.echo((out / "table.md").read_text())
        typer.echo(f"plot: {out / 'joins.png'}")
