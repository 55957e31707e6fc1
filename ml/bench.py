"""Benchmark programs for purification and one SGD iteration, on random secret inputs."""

from __future__ import annotations

import numpy as np

from ml.purify import purify
from ml.sgd import Hyper, sgd_step
from mpc.party import Party
from mpc.preprocessing import timed_runs
from mpc.protocols.arithmetic import share_input

U64 = np.uint64


async def _random_fixed(party: Party, shape, limit_bits: int) -> np.ndarray:
    values = None
    if party.id == 0:  # signed values below 2^limit_bits ulps
        values = (party.rng.words(shape) >> U64(64 - limit_bits)) - U64(1 << (limit_bits - 1))
    return await share_input(party, 0, values, shape)


async def run_ml_bench(party: Party, rows: int, columns: int, batch: int, features: int,
                       repeat: int = 3, model: str = "logistic") -> dict:
    with party.stage("inputs"):
        valid = None
        if party.id == 0:  # about three rows in four real
            valid = (party.rng.words(rows) & U64(3) != 0).astype(U64)
        valid = await share_input(party, 0, valid, rows)
        table = [await _random_fixed(party, rows, 30) for _ in range(columns)]
        x = await _random_fixed(party, (batch, features), 17)  # |x| < 1
        y = await _random_fixed(party, batch, 17)
        w = await _random_fixed(party, features, 12)
    hyper = Hyper(model, 1, batch, 0.1)
    await timed_runs(party, "purify", repeat, lambda: purify(party, valid, table),
                     prefetch=False)
    await timed_runs(party, "sgd_iter", repeat,
                     lambda: sgd_step(party, w, x, y, hyper, hyper.learning_rate / batch))
    return {name: cost.as_dict() for name, cost in party.accounting.stages.items()}
