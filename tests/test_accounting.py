"""Stages partition time: a nested stage pauses the one around it, and nothing outside every
stage is counted."""

import time

from twofold.mpc.accounting import Accounting


def test_nested_stages_partition_the_time():
    accounting = Accounting()
    time.sleep(0.02)  # outside every stage: not counted
    started = time.perf_counter()
    with accounting.stage("outer"):
        time.sleep(0.03)
        with accounting.stage("inner"):
            time.sleep(0.05)
            accounting.record_round()
        with accounting.stage("outer"):  # re-entering a stage charges the same stage
            time.sleep(0.01)
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    stages = accounting.stages
    assert set(stages) == {"outer", "inner"}
    assert stages["inner"].wall_s >= 0.05 and stages["inner"].rounds == 1
    assert stages["outer"].wall_s >= 0.06 and stages["outer"].rounds == 0
    # counted once each: a double-counted inner stage would exceed the elapsed time by 0.05
    assert abs(stages["outer"].wall_s + stages["inner"].wall_s - elapsed) < 1e-3
