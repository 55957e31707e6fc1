"""The kill figure: kill -9 of one server (each in turn) at every point of the upload
protocol (tests/support/crashing_server.py), restart, retry; prints one row per trial. Not run in CI
(tests/test_upload_kills.py runs two trials); about ten seconds per trial.

    .venv/bin/python -m tools.kill_uploads [--rows 140000]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tests.support.crashing_server import CRASH_POINTS
from tests.support.upload_kills import run_trial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=140_000,
                        help="rows of the new upload (above 131072: two chunks)")
    args = parser.parse_args()
    print("| server killed | at | died | first upload exit | before the retry | retry exit "
          "| after the retry | mismatched shares | passed |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    passed = 0
    trials = [(party, point) for party in (0, 1) for point in CRASH_POINTS]
    for party, point in trials:
        with tempfile.TemporaryDirectory() as folder:
            trial = run_trial(party, point, args.rows, Path(folder))
        names = (trial.baseline_id, trial.new_id)
        mismatched = trial.before.mismatched + trial.after.mismatched
        passed += trial.passed
        print(f"| {party} | {point} | {trial.server_died} | {trial.first_exit} | "
              f"{trial.before.describe(*names)} | {trial.retry_exit} | "
              f"{trial.after.describe(*names)} | {len(mismatched)} | {trial.passed} |",
              flush=True)
    print(f"\n{passed} of {len(trials)} trials passed")


if __name__ == "__main__":
    main()
