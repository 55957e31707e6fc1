"""`twofold demo`: the whole product on this machine in under a minute.

Keys in a temporary folder; a dealer and two servers on loopback (or, with --correlations ot,
the two servers alone, making their correlated randomness by OT); three owners upload the
sample tables and their schema shipped in cli/demo_data (an OULAD-shaped course data set: a
university's enrolments and courses, an agency's students, a statistics office's regions); an
analyst runs a statistics query and a level-5 (differentially private) training job on the join,
and reveals both. Printed: the statistics, the model's accuracy beside plaintext training, and
time, bytes and rounds per stage. Everything is removed afterwards.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from twofold.bench import oulad
from twofold.cli.local_cluster import LocalCluster
from twofold.client import Client
from twofold.mpc.privacy import Privacy
from twofold.mpc.session import CORRELATIONS
from twofold.owners.policy import AGGREGATE_FUNCTIONS, ALL_COLUMNS, Policy

DATA = Path(__file__).parent / "demo_data"
OWNERS = ("university", "agency", "statistics_office", "analyst")
SCHEMA = DATA / "schema.toml"


PROTECTED_BY_BUDGET = ("enrolments", "students")  # rows of, or about, a student


def owners_policy(epsilon: float):
    """Every owner lets the analyst, and only the analyst, aggregate and train models on
    every column (no filters, groups or raw rows), with at least 10 of its entities behind
    every result. The tables about students also keep a lifetime privacy budget that leaves
    room for this demo's training job; a course or a region describes many students, which a
    per-student guarantee cannot protect, so those owners rely on the minimum group size."""
    def policy(table: str) -> Policy:
        budget = (Privacy(epsilon=max(10.0, 2 * epsilon), delta=1e-4)
                  if table in PROTECTED_BY_BUDGET else None)
        return Policy(recipients=("analyst",),
                      aggregate_columns={ALL_COLUMNS: AGGREGATE_FUNCTIONS},
                      model_columns=(ALL_COLUMNS,), min_group_size=10, budget=budget)
    return policy


STATISTICS = """
[job]
recipients = ["analyst"]
[statistics]
columns = ["enrolments.clicks", "students.age", "regions.income"]
"""


def _run(analyst: Client, spec: str, status, label: str) -> tuple[dict, dict]:
    """The job's output and server 0's costs per stage (from the last status seen)."""
    seen: list[dict] = []

    def show(statuses):
        seen[:] = statuses
        status.update(f"{label}: {statuses[0].get('stage') or statuses[0]['state']}")

    result = analyst.run(spec, timeout_s=600, on_status=show)
    return result.data, seen[0]["costs"]


def demo(iterations: int = typer.Option(600, help="SGD iterations of the training job."),
         epsilon: float = typer.Option(2.0, help="Privacy budget of the training job."),
         correlations: str = typer.Option("dealer", help='"dealer", or "ot": two servers '
                                          "alone, making correlated randomness themselves."),
         as_json: bool = typer.Option(False, "--json", help="Print the results as JSON.")):
    """Run Twofold end to end on loopback with sample data; cleans up after itself."""
    if correlations not in CORRELATIONS:
        raise typer.BadParameter(f"correlations must be one of {', '.join(CORRELATIONS)}")
    console = Console(stderr=True)
    started = time.perf_counter()
    joined = oulad.load_joined(DATA)
    starting = "the dealer and two servers" if correlations == "dealer" else "two servers (OT)"
    with console.status(f"starting {starting}") as status, \
            LocalCluster(timeout_s=120, schema_text=SCHEMA.read_text(), owners=OWNERS,
                         correlations=correlations) as cluster:
        for csv in DATA.glob("*.csv"):
            shutil.copy(csv, cluster.folder / csv.name)
        cluster.start_all()
        status.update("three owners validate, share and upload their tables")
        cluster.upload_all(cluster.folder, owners_policy(epsilon))
        analyst = Client(cluster.owner_config("analyst"))
        statistics, statistics_costs = _run(analyst, STATISTICS, status, "statistics query")
        spec = oulad.training_spec(epsilon, iterations, len(joined))
        model, training_costs = _run(analyst, spec, status, "level 5 training")
    results = {
        "statistics": statistics["values"],
        **model_results(model, joined, iterations),
        "costs": {"statistics query": statistics_costs, "training": training_costs},
        "seconds": time.perf_counter() - started,
    }
    if as_json:
        typer.echo(json.dumps(results, indent=1))
        return
    _print(results)


def model_results(model: dict, joined, iterations: int) -> dict:
    """The model and its accuracy beside plaintext training; a withheld model (its noisy
    size check failed) has neither, and the reason instead."""
    ledger = model["info"]["dp_ledger"]
    if not model["released"]:
        return {"model": {"released": False, "reason": model["reason"], "dp_ledger": ledger},
                "accuracy": None}
    return {"model": {"released": True, "coefficients": model["coefficients"],
                      "intercept": model["intercept"], "dp_ledger": ledger},
            "accuracy": {"mpc": oulad.model_accuracy(joined, model),
                         "plaintext_same_noise": oulad.plaintext_accuracy(joined, ledger,
                                                                          iterations),
                         "plaintext_no_noise": oulad.plaintext_accuracy(joined, None,
                                                                        iterations)}}


def _print(results: dict) -> None:
    console = Console()
    table = Table(title="Statistics over the join (revealed to the analyst only)")
    for column in ("column", "count", "mean", "std", "min", "max"):
        table.add_column(column, justify="left" if column == "column" else "right")
    for name, values in results["statistics"].items():
        if isinstance(values, dict):
            table.add_row(name, str(values["count"]), f"{values['mean']:.3f}",
                          f"{values['std']:.3f}", f"{values['min']:.3f}", f"{values['max']:.3f}")
    console.print(table)
    accuracy, ledger = results["accuracy"], results["model"]["dp_ledger"]
    model = (f"Level 5 model (epsilon {ledger['epsilon']}, delta {ledger['delta']}, "
             f"tau {ledger['tau']}, sigma {ledger['sigma']:.3f})")
    if accuracy is None:
        console.print(f"{model} withheld: {results['model']['reason']}")
    else:
        console.print(f"{model}: accuracy {accuracy['mpc']:.3f} in MPC, "
                      f"{accuracy['plaintext_same_noise']:.3f} in plaintext with the same noise, "
                      f"{accuracy['plaintext_no_noise']:.3f} in plaintext without noise")
    costs = Table(title="Time, bytes and rounds per stage (server 0)")
    for column in ("job", "stage", "seconds", "bytes sent", "rounds"):
        costs.add_column(column, justify="left" if column in ("job", "stage") else "right")
    for job, stages in results["costs"].items():
        for stage, cost in stages.items():
            if cost["rounds"] or cost["wall_s"] > 0.01:
                costs.add_row(job, stage, f"{cost['wall_s']:.2f}", f"{cost['bytes_sent']:,}",
                              str(cost["rounds"]))
    console.print(costs)
    console.print(f"Done in {results['seconds']:.1f} s; keys, shares and servers are gone.")
