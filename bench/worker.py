"""Run one named program as one server for one job, and print its result as a JSON line.

Used by the local cluster (benchmarks, demos, tests with real processes):
    python -m bench.worker --config server.toml --job JOB --program NAME --params JSON
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from twofold.bench.joins import run_join_bench
from twofold.bench.protocols import run_mpc_bench
from twofold.bench.training import run_ml_bench
from twofold.mpc.allocator import keep_large_blocks
from twofold.mpc.errors import TwofoldError
from twofold.mpc.session import open_party
from twofold.servers.config import load_server_endpoints

PROGRAMS: dict[str, Callable[..., Awaitable[dict]]] = {
    "bench_mpc": run_mpc_bench, "bench_join": run_join_bench, "bench_ml": run_ml_bench}


async def run_program(config: Path, job: str, program: str, params: dict):
    endpoints = load_server_endpoints(config)
    async with open_party(endpoints, job) as party:
        return await PROGRAMS[program](party, **params)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--job", required=True)
    parser.add_argument("--program", choices=sorted(PROGRAMS), required=True)
    parser.add_argument("--params", default="{}")
    args = parser.parse_args(argv)
    keep_large_blocks()
    try:
        result = asyncio.run(run_program(args.config, args.job, args.program,
                                         json.loads(args.params)))
    except (TwofoldError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
