"""Benchmark programs for purification and SGD training, on random secret inputs."""

from __future__ import annotations

from twofold.bench.timing import timed_runs
from twofold.ml.purify import purify
from twofold.ml.sgd import Hyper, sequential_batches, train
from twofold.mpc.party import Party
from twofold.mpc.protocols.arithmetic import share_input
from twofold.mpc.ring import U64
from twofold.mpc.shares import Additive


async def _random_fixed(party: Party, shape, limit_bits: int) -> Additive:
    values = None
    if party.id == 0:  # signed values below 2^limit_bits ulps
        values = (party.rng.words(shape) >> U64(64 - limit_bits)) - U64(1 << (limit_bits - 1))
    return await share_input(party, 0, values, shape)


async def _labels(party: Party, rows: int) -> Additive:
    """Random 0/1 labels, fixed point (timing does not depend on the data)."""
    labels = None
    if party.id == 0:
        labels = (party.rng.words(rows) & U64(1)) << U64(party.fixed.frac_bits)
    return await share_input(party, 0, labels, rows)


async def run_ml_bench(party: Party, rows: int, columns: int, trainings: list[dict],
                       repeat: int = 3) -> dict:
    """Stages purify#r (rows x columns, about three rows in four real) and, per training
    {"name", "rows", "features", "batch", "iterations"}, name#r: logistic regression on random
    features in [-1, 1), every correlation included (training makes its own ahead)."""
    with party.stage("inputs"):
        valid = None
        if party.id == 0:
            valid = (party.rng.words(rows) & U64(3) != 0).astype(U64)
        valid = await share_input(party, 0, valid, rows)
        table = [await _random_fixed(party, rows, 30) for _ in range(columns)]
        data = [(await _random_fixed(party, (spec["rows"], spec["features"]), 17),
                 await _labels(party, spec["rows"])) for spec in trainings]
    await timed_runs(party, "purify", repeat, lambda: purify(party, valid, table),
                     prefetch=False)
    for spec, (x, y) in zip(trainings, data, strict=True):
        hyper = Hyper("logistic", spec["iterations"], spec["batch"], 0.1)
        await timed_runs(party, spec["name"], repeat,
                         lambda x=x, y=y, hyper=hyper: train(
                             party, x, y, hyper, sequential_batches(len(y), hyper)),
                         prefetch=False)
    return {name: cost.as_dict() for name, cost in party.accounting.stages.items()}
