"""Benchmark reports: the median, min and max of repeated runs, per op and per stage, from the
slower server; and the machine they ran on."""

import os

from twofold.bench.report import machine, row, slowest, stage_rows


def stages(**walls):
    return {name: {"wall_s": wall, "offline_s": wall / 4, "bytes_sent": 100, "rounds": 3}
            for name, wall in walls.items()}


def test_rows_give_median_min_and_max_over_runs():
    runs = [{"seconds": s, "online_s": s / 2, "offline_s": s / 2, "bytes": 10, "rounds": 2}
            for s in (3.0, 1.0, 2.0, 10.0, 4.0)]
    got = row("op", 7, runs, extra=1)
    assert (got["seconds"], got["min_s"], got["max_s"], got["runs"]) == (3.0, 1.0, 10.0, 5)
    assert got["online_s"] == 1.5 and got["bytes"] == 10 and got["extra"] == 1


def test_each_run_counts_the_slower_server_and_stages_sum():
    servers = [stages(inputs=9.0, sort=2.0, compact=1.0), stages(inputs=0.1, sort=2.5,
                                                                 compact=0.2)]
    assert slowest(servers, ["sort", "compact"])["seconds"] == 3.0  # server 0: 3.0 > 2.7
    runs = [servers, [stages(inputs=1.0, sort=4.0, compact=1.0), stages(sort=1.0, compact=1.0)]]
    total, sort, compact = stage_rows("join", 10, runs)
    assert [total["op"], sort["op"], compact["op"]] == ["join", "join.sort", "join.compact"]
    assert (total["min_s"], total["max_s"]) == (3.0, 5.0) and sort["max_s"] == 4.0
    timed = stage_rows("job", 10, runs, elapsed=[6.0, 8.0])[0]
    assert (timed["seconds"], timed["min_s"], timed["max_s"]) == (7.0, 6.0, 8.0)


def test_machine_names_cores_and_versions():
    about = machine()
    assert about["cores"] == os.cpu_count()
    assert {"python", "numpy", "pyzmq", "libzmq", "cryptography", "twofold"} <= set(about)
