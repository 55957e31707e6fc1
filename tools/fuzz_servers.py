"""The fuzz figure: random and mutated messages to every handler of a server and of the
dealer (real processes on loopback, registered keys), then a valid job that must come out
right. Not run in CI (tests/test_fuzz.py runs a small version); a few minutes at the default.

    .venv/bin/python -m tools.fuzz_servers [--per-handler 10000] [--seed 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.support.fuzzing import fuzz, valid_job_is_right
from tests.support.servers import SCHEMA
from twofold.cli.local_cluster import LocalCluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-handler", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with LocalCluster(timeout_s=60, schema_text=SCHEMA, owners=("alice", "bob")) as cluster:
        cluster.start_all()
        print("| target | handlers | messages | accepted | refused | dropped (too large) "
              "| unanswered | deaths | seconds |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for target in ("server", "dealer"):
            start = time.monotonic()
            tally = fuzz(cluster, target, args.per_handler, args.seed, oversize=10)
            handlers = ", ".join(f"{name} {count}" for name, count in tally.per_handler.items())
            print(f"| {target} | {handlers} | {tally.sent} | {tally.ok} | {tally.refused} | "
                  f"{tally.dropped} | {tally.unanswered} | {tally.deaths} | "
                  f"{time.monotonic() - start:.0f} |", flush=True)
        with tempfile.TemporaryDirectory() as folder:
            right = valid_job_is_right(cluster, Path(folder))
        alive = all(p.poll() is None for p in (cluster.dealer, *cluster.servers))
        print(f"\nafterwards: processes alive {alive}; a valid upload and statistics job "
              f"{'gives the right answer' if right else 'gives a WRONG answer'}")


if __name__ == "__main__":
    main()
