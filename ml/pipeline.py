"""From a joined table to a trained model, at privacy level 3, 4 or 5.

- level 3: compact, open |J|, shuffle the |J| real rows, consecutive batches;
- level 4: check |J| >= the declared lower bound, purify (N rows, all real), consecutive
  batches over the shuffled N rows; |J| is never opened;
- level 5: keep at most tau join rows per primary-private tuple (extra rows dropped), check the
  lower bound with noise, Poisson batches over the N rows (dummy rows give a zero gradient),
  features scaled to unit norm, residuals clamped, and each server's discrete Gaussian noise on
  every gradient (see ml/dp.py).
The lower-bound check (levels 4 and 5) opens nothing: its outcome stays a shared bit, training
runs either way, and the release step withholds the model when the bit is 0, so only the
recipients learn the outcome (at level 5 a noisy one, whose epsilon the job is charged).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np

from twofold.ml.dp import Ledger, calibrate, count_sigma, gradient_bound
from twofold.ml.features import Scaling, scale, scaling_for
from twofold.ml.purify import compact_and_count, purify
from twofold.ml.sgd import Hyper, poisson_batches, sequential_batches, train
from twofold.mpc.noise import discrete_gaussian
from twofold.mpc.party import Party
from twofold.mpc.prg import KEY_BYTES, Prg
from twofold.mpc.privacy import Privacy
from twofold.mpc.protocols.arithmetic import mul
from twofold.mpc.protocols.boolean import equal, less_than
from twofold.mpc.protocols.scan import segmented_scan
from twofold.mpc.protocols.shuffle import shuffle
from twofold.mpc.protocols.sort import SortKey, sort
from twofold.mpc.ring import U64
from twofold.mpc.shares import Additive
from twofold.owners.keys import KEY_BITS
from twofold.sorting_join.table import SharedTable


@dataclass(frozen=True)
class TrainSpec:
    features: tuple[str, ...]
    label: str
    feature_ranges: tuple[tuple[float, float], ...]
    label_range: tuple[float, float]
    hyper: Hyper
    level: int
    min_join_size: int = 1
    privacy: Privacy | None = None  # level 5: the training's (epsilon, delta, tau)
    size_check: Privacy | None = None  # level 5: the noisy size check's own parameters
    private_key: str | None = None  # qualified primary key of the primary private table
    private_key_bits: int = KEY_BITS  # ... and the bits a sort by it needs (from the schema)

    def dp(self) -> tuple[Privacy, str]:
        """Level 5's privacy parameters and the key of its privacy unit (the parser sets
        both)."""
        if self.privacy is None or self.private_key is None:
            raise ValueError("differentially private training needs its privacy parameters "
                             "and its privacy unit")
        return self.privacy, self.private_key


@dataclass
class TrainedModel:
    weights: Additive  # features then intercept
    scaling: Scaling
    join_size: int | None  # opened at level 3 only
    ledger: Ledger | None
    released: Additive  # one bit: 0 if the size check failed (withhold the model)
    training_rows: tuple[Additive, Additive] | None = None  # (x, y), if kept


def training_ledger(spec: TrainSpec, rows: int, frac_bits: int) -> Ledger:
    """Level 5's noise calibration, from public inputs only (rows: the join's public row
    count N), so that a submission can be refused when it cannot succeed. A gradient's rows
    hold the features and the intercept's constant 1."""
    hyper = spec.hyper
    clip = gradient_bound(hyper.residual_bound, len(spec.features) + 1, frac_bits)
    privacy, _ = spec.dp()
    return calibrate(privacy=privacy, clip=clip, iterations=hyper.iterations,
                     batch_size=hyper.batch_size, rows=rows, min_join_size=spec.min_join_size)


async def keep_tau_rows(party: Party, table: SharedTable, key: str, tau: int,
                        key_bits: int = KEY_BITS) -> SharedTable:
    """At most tau real rows per value of `key` (below 2^key_bits) stay real; returns the table
    sorted by key. Costs go to the stage "tau"."""
    with party.stage("tau"):
        names = list(table.columns)
        moved = await sort(party, [table.column(key), table.valid,
                                   *[table.column(n) for n in names]],
                           [SortKey(table.column(key), bits=key_bits, signed=False)])
        keys, valid, columns = moved[0], moved[1], moved[2:]
        n = len(valid)
        ones = party.public(np.ones(n, U64))
        if n > 1:
            same = await equal(party, Additive(keys[1:]), Additive(keys[:-1]))
            heads = Additive(np.concatenate([ones[:1], ones[1:] - same]))
        else:
            heads = ones
        (rank,) = await segmented_scan(party, heads, [valid], "sum")
        limit = party.public(np.full(n, tau, U64))
        keep = Additive(ones - await less_than(party, limit, rank))
        return SharedTable(dict(zip(names, columns, strict=True)), await mul(party, valid, keep))


async def join_size_reaches(party: Party, valid: Additive, minimum: int,
                            noise: Privacy | None = None) -> Additive:
    """Shares of one bit: does |J| (plus each server's own discrete Gaussian when `noise` is
    given) reach `minimum`? Nothing is opened."""
    count = valid.sum(dtype=U64, keepdims=True)
    if noise is not None:
        count = count + discrete_gaussian(party.rng, count_sigma(noise), 1).view(U64)
    below = await less_than(party, Additive(count), party.public(np.array([minimum], U64)))
    return Additive(party.public(np.ones(1, U64)) - below)


async def _public_seed(party: Party) -> Prg:
    """Randomness both servers know and neither chose alone: each contributes a key."""
    mine = np.frombuffer(party.rng.random_bytes(KEY_BYTES).tobytes(), np.uint8)
    (theirs,) = await party.link.exchange(mine)
    return Prg((mine ^ theirs).tobytes())


async def fit(party: Party, table: SharedTable, spec: TrainSpec, keep_rows: bool = False,
              entities_reach_k: Additive | None = None) -> TrainedModel:
    """Train; with keep_rows, also return the shares of the rows in training order (so a
    test can replay the same batches in plaintext). entities_reach_k, shares of one bit
    (levels 3 and 4), withholds the model when 0: at level 3 every row stops being real
    before |J| is opened, so the servers open 0 rather than a small join."""
    hyper, n = spec.hyper, table.rows
    released = party.public(np.ones(1, U64))
    if entities_reach_k is not None and spec.level == 3:
        table = SharedTable(table.columns, await mul(
            party, table.valid, Additive(np.broadcast_to(entities_reach_k, (n,)))))
    elif entities_reach_k is not None:
        released = entities_reach_k
    if spec.level == 5:
        privacy, key = spec.dp()
        table = await keep_tau_rows(party, table, key, privacy.tau, spec.private_key_bits)
    if spec.level >= 4:
        with party.stage("size check"):
            reaches = await join_size_reaches(party, table.valid, spec.min_join_size,
                                              spec.size_check)
            released = reaches if entities_reach_k is None else await mul(party, released,
                                                                          reaches)
    with party.stage("scale"):
        scaling = scaling_for([*spec.feature_ranges, (1.0, 1.0)], unit_norm=spec.level == 5,
                              fixed=party.fixed)
        ones = party.public(np.full(n, party.fixed.encode(1.0)))
        x = await scale(party, [table.column(f) for f in spec.features] + [ones], scaling)
        low, high = spec.label_range  # the label goes to [0, 1]
        y = Additive((await scale(party, [table.column(spec.label)],
                                  Scaling((low,), (1.0 / (high - low),))))[:, 0])
    columns = cast(list[Additive], list(x.T)) + [y]
    join_size, ledger, valid, expected = None, None, None, None
    with party.stage("purify" if spec.level < 5 else "calibrate"):
        if spec.level == 3:
            join_size, columns = await compact_and_count(party, table.valid, columns)
            if join_size == 0:  # public at level 3: nothing to learn from
                return TrainedModel(Additive(np.zeros(x.shape[1], U64)), scaling, 0, None,
                                    party.public(np.zeros(1, U64)))
            columns = await shuffle(party, [Additive(c[:join_size]) for c in columns])
            batches = sequential_batches(join_size, hyper)
        elif spec.level == 4:
            columns = await purify(party, table.valid, columns)
            batches = sequential_batches(n, hyper)
        else:
            ledger = training_ledger(spec, n, party.fixed.frac_bits)
            valid, expected = table.valid, float(hyper.batch_size)
            batches = poisson_batches(await _public_seed(party), n, hyper)
    with party.stage("train"):
        features, labels = Additive(np.stack(columns[:-1], axis=1)), columns[-1]
        weights = await train(party, features, labels, hyper, batches, valid=valid,
                              noise_sigma=ledger.sigma if ledger else 0.0,
                              expected_batch=expected)
    return TrainedModel(weights, scaling, join_size, ledger, released,
                        (features, labels) if keep_rows else None)

