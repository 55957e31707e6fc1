"""What a benchmark reports: per operation or stage, the median, min and max over repeated
runs of its seconds (online and waiting for correlations), its bytes and rounds; and the
machine it ran on (cores, Python, the versions of the packages that set the pace), so a figure
can be reproduced on the same kind of machine."""

from __future__ import annotations

import json
import os
import platform
import statistics
from importlib import metadata

import zmq
from rich.console import Console
from rich.table import Table

PACKAGES = ("twofold", "numpy", "pyzmq", "cryptography", "numba", "msgpack")
SKIPPED_STAGES = ("inputs", "default")  # set-up of a benchmark program, not what it measures


def machine() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return {"cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "libzmq": zmq.zmq_version(), **versions}


def slowest(stages_by_server: list[dict], names: list[str]) -> dict:
    """One run's costs of the named stages, from the server whose wall time is longest: its
    online and offline (waiting for correlations) parts add up to its wall time."""
    totals = [{key: sum(stages[n][key] for n in names if n in stages)
               for key in ("wall_s", "offline_s", "bytes_sent", "rounds")}
              for stages in stages_by_server]
    worst = max(totals, key=lambda t: t["wall_s"])
    return {"seconds": worst["wall_s"], "online_s": worst["wall_s"] - worst["offline_s"],
            "offline_s": worst["offline_s"], "bytes": max(t["bytes_sent"] for t in totals),
            "rounds": max(t["rounds"] for t in totals)}


def row(op: str, n: int, runs: list[dict], **extra) -> dict:
    """A report row from per-run costs ({"seconds", "online_s", "offline_s", "bytes",
    "rounds"}): the median, min and max seconds, the median online and offline seconds, and
    bytes and rounds (the same in every run: they depend only on public sizes)."""
    seconds = [run["seconds"] for run in runs]
    return {"op": op, "n": n, "runs": len(runs), "seconds": statistics.median(seconds),
            "min_s": min(seconds), "max_s": max(seconds),
            "online_s": statistics.median(run["online_s"] for run in runs),
            "offline_s": statistics.median(run["offline_s"] for run in runs),
            "bytes": int(statistics.median(run["bytes"] for run in runs)),
            "rounds": int(statistics.median(run["rounds"] for run in runs)), **extra}


def stage_rows(op: str, n: int, runs: list[list[dict]], elapsed: list[float] | None = None,
               **extra) -> list[dict]:
    """A total row and one row per stage; runs[r][server] = that run's stages. `elapsed`:
    each run's time as its client saw it (submission to result), which then is the total's
    seconds, the stages' sum being online + offline."""
    names = [name for name in runs[0][0] if name not in SKIPPED_STAGES]
    totals = [slowest(run, names) for run in runs]
    if elapsed is not None:
        totals = [{**total, "seconds": seconds}
                  for total, seconds in zip(totals, elapsed, strict=True)]
    rows = [row(op, n, totals, **extra)]
    for name in names:
        rows.append(row(f"{op}.{name}", n, [slowest(run, [name]) for run in runs]))
    return rows


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def print_report(rows: list[dict], as_json: bool) -> None:
    """The timed rows in one table (the union of their columns), rows of other kinds (OT's
    per-kind costs) in another, captioned with the machine; or JSON."""
    about = machine()
    if as_json:
        print(json.dumps({"machine": about, "rows": rows}, indent=1))
        return
    versions = ", ".join(f"{name} {about[name]}" for name in PACKAGES)
    caption = f"{about['cores']} cores, Python {about['python']}, {versions}"
    console = Console(width=max(160, Console().width))
    for timed in (True, False):
        group = [entry for entry in rows if ("seconds" in entry) == timed]
        if not group:
            continue
        columns = list(dict.fromkeys(column for entry in group for column in entry))
        title = (f"Twofold benchmark: median (min, max) of {group[0].get('runs', 1)} run(s); "
                 "bytes per server" if timed else "Correlations made by OT (both servers)")
        table = Table(title=title, caption=caption)
        for column in columns:
            table.add_column(column, justify="left" if column == "op" else "right")
        for entry in group:
            table.add_row(*(_cell(entry.get(c)) for c in columns))
        console.print(table)
