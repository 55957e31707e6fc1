"""Benchmark programs for the core protocols, run by both servers on random secret inputs.

Server 0 makes random plaintext inputs in the fixed-point range and secret-shares them (not
timed); every operation then runs `repeat` times, each in a stage of its own named "op#rep".
"""

from __future__ import annotations

import numpy as np

from twofold.bench.timing import timed_runs
from twofold.mpc.party import Party
from twofold.mpc.protocols.arithmetic import fixed_matmul, fixed_mul, mul, share_input, truncate
from twofold.mpc.protocols.boolean import arith_to_bool, clamp_public, equal, less_than
from twofold.mpc.protocols.shuffle import shuffle
from twofold.mpc.protocols.sort import SortKey, sort
from twofold.mpc.shares import Additive

OPS = ("mul", "fixed_mul", "matmul", "trunc", "lt", "eq", "clamp", "a2b", "shuffle", "sort",
       "sort32")
MATMUL_WIDTH = 128  # matmul benchmark: (n / 128 x 128) @ (128 x 1), SGD's forward shape
CLAMP_RANGE = (0.0, 10_000.0)  # clamp benchmark: a decimal column's declared [min, max]


async def _random_input(party: Party, shape, bits: int = 40) -> Additive:
    values = None
    if party.id == 0:
        values = party.rng.words(shape) >> np.uint64(64 - bits)
        values -= np.uint64(1 << (bits - 1))  # signed, |v| < 2^(bits-1)
    return await share_input(party, 0, values, shape)


async def _run_op(party: Party, op: str, inputs: dict[str, Additive]) -> None:
    x, y = inputs["x"], inputs["y"]
    if op == "mul":
        await mul(party, x, y)
    elif op == "fixed_mul":
        await fixed_mul(party, inputs["small_x"], inputs["small_y"])
    elif op == "matmul":
        await fixed_matmul(party, inputs["matrix"], inputs["weights"])
    elif op == "trunc":
        await truncate(party, x)
    elif op == "lt":
        await less_than(party, x, y)
    elif op == "eq":
        await equal(party, x, y)
    elif op == "clamp":  # any words, as a modified owner client may send, to a column's range
        low, high = party.fixed.encode(CLAMP_RANGE).view(np.int64)
        await clamp_public(party, inputs["key"], low, high)
    elif op == "a2b":
        await arith_to_bool(party, x)
    elif op == "shuffle":
        await shuffle(party, [x, y])
    elif op == "sort":
        await sort(party, [inputs["key"], y], [SortKey(inputs["key"], bits=64)])
    elif op == "sort32":  # a key declared 32 bits wide
        await sort(party, [inputs["key32"], y], [SortKey(inputs["key32"], bits=32)])
    else:
        raise ValueError(f"unknown benchmark op {op!r}; choose from {', '.join(OPS)}")


ON_DEMAND_OPS = {"sort", "sort32"}  # plans too large to hold (gigabytes at a million rows)


async def run_mpc_bench(party: Party, n: int, repeat: int = 3, ops=OPS) -> dict:
    """{"stages": {stage: StageCost dict}, "correlations": {kind: costs}}; the second is what
    making each kind of correlation cost this server (OT mode only, else empty)."""
    rows = max(n // MATMUL_WIDTH, 1)
    with party.stage("inputs"):
        inputs = {"x": await _random_input(party, n), "y": await _random_input(party, n),
                  # fixed point with products below 2^30 (real units), as truncation needs
                  "small_x": await _random_input(party, n, bits=24),
                  "small_y": await _random_input(party, n, bits=24),
                  "key": await _random_input(party, n, bits=64),  # full-range words
                  "key32": await _random_input(party, n, bits=32),
                  "matrix": await _random_input(party, (rows, MATMUL_WIDTH), bits=20),
                  "weights": await _random_input(party, (MATMUL_WIDTH, 1), bits=20)}
    for op in ops:
        await timed_runs(party, op, repeat, lambda op=op: _run_op(party, op, inputs),
                         prefetch=op not in ON_DEMAND_OPS)
    stages = {name: cost.as_dict() for name, cost in party.accounting.stages.items()}
    report = getattr(party.corr, "cost_report", dict)
    return {"stages": stages, "correlations": report()}
