"""The release step: what a job stores for its recipients is exactly its declared result.

Every job kind hands its result here, on shares, before anything is stored:
- row-shaped results (rows, aggregate groups, predictions): each row's keep bit (the join's
  indicator, the group's last row, the owners' minimum group sizes, differentially private
  group selection) multiplies every column of the row, then one secret shuffle puts the rows
  in an order that depends on neither the input order nor the data. What is stored is N rows:
  the result's rows, each with indicator 1, and rows of zeros.
- value-shaped results (statistics, accuracy, model): one bit multiplies every value: 0 when a
  minimum group size or a join-size check failed, and then every value is zero. A model
  stores the bit beside its weights ("_released"), so that its recipients, and only they,
  learn that the size check failed; withheld statistics look like those of an empty join.
Noise (each server its own discrete Gaussian, see ml/dp.py) is added here too, on shares.
Nothing is opened to the servers; the recipient learns the result and the public N only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import cast

import numpy as np

from twofold.ml.dp import StatisticsLedger, selection_threshold
from twofold.mpc.noise import discrete_gaussian
from twofold.mpc.outputs import RELEASED, Output, OutputColumn
from twofold.mpc.party import Party
from twofold.mpc.protocols.arithmetic import mul
from twofold.mpc.protocols.boolean import equal, flag_rows, less_than
from twofold.mpc.protocols.shuffle import shuffle
from twofold.mpc.ring import U64
from twofold.mpc.shares import Additive
from twofold.owners.schema import INDICATOR
from twofold.sorting_join.multiway import product


@dataclass(frozen=True)
class Thresholds:
    """Minimum sizes a group (or a statistics output) must reach to be released: per table
    with a rule, its k and the shares of the group's number of that table's entities."""

    sizes: dict[str, int]
    counts: dict[str, Additive]


async def at_least(party: Party, values: Additive, minimum: float) -> Additive:
    """Shares of [values >= minimum], for integer values and a public minimum."""
    bound = party.public(np.full(values.shape, int(np.ceil(minimum)), np.int64).view(U64))
    return Additive(party.public(np.ones(values.shape, U64))
                    - await less_than(party, values, bound))


async def meets(party: Party, thresholds: Thresholds) -> Additive | None:
    """Shares of [every table's count reaches its k] (one comparison round for all tables),
    or None without rules."""
    if not thresholds.sizes:
        return None
    tables = sorted(thresholds.sizes)
    counts = Additive(np.stack([thresholds.counts[table] for table in tables]))
    bounds = np.stack([np.full(counts.shape[1:], thresholds.sizes[table], np.int64)
                       for table in tables]).view(U64)
    below = await less_than(party, counts, party.public(bounds))
    reached = party.public(np.ones(counts.shape, U64)) - below
    return await product(party, cast(list[Additive], list(reached)))


def noisy_minimum(thresholds: Thresholds, ledger: StatisticsLedger) -> int:
    """Under differential privacy the owners' k binds the noisy row count, as k x tau rows
    (at most tau rows per unit entity: without noise, at least k entities); exact entity
    counts would break the guarantee."""
    return max(thresholds.sizes.values(), default=1) * ledger.tau


def add_noise(party: Party, values: dict[str, Additive], ledger: StatisticsLedger,
              columns: dict[str, OutputColumn]) -> dict[str, Additive]:
    """Every value plus this server's own discrete Gaussian of the ledger's deviation for it:
    counts on the integers, fixed-point values on their grid."""
    noisy = {}
    for name, shares in values.items():
        grid = party.fixed.scale if columns[name].decoding == "fixed" else 1.0
        noise = discrete_gaussian(party.rng, ledger.sigmas[name] * grid, shares.size)
        noisy[name] = Additive(shares + noise.reshape(shares.shape).view(U64))
    return noisy


def _release_stage(step):
    """The release step's costs go to the stage "release", wherever it is called from."""
    @functools.wraps(step)
    async def staged(party: Party, *args, **kwargs) -> Output:
        with party.stage("release"):
            return await step(party, *args, **kwargs)
    return staged


@_release_stage
async def release_rows(party: Party, kind: str, columns: list[OutputColumn],
                       shares: list[Additive], keep: Additive, *, means=(),
                       info: dict | None = None) -> Output:
    """Zero every column of the rows not kept, then shuffle the rows (indicator included)."""
    table = np.stack([np.asarray(s, U64) for s in shares]) if shares else np.zeros((0, len(keep)),
                                                                                   U64)
    # no columns: no rows, nothing asked
    masked = cast(list[Additive], list(await flag_rows(party, keep, Additive(table))))
    *shuffled, indicator = await shuffle(party, [*masked, keep])
    return Output(kind, [*columns, OutputColumn(INDICATOR, "count")], [*shuffled, indicator],
                  party.fixed.frac_bits, list(means), info or {})


@_release_stage
async def release_values(party: Party, kind: str, columns: list[OutputColumn],
                         shares: list[Additive], released: Additive, *,
                         say_withheld: bool = False, info: dict | None = None) -> Output:
    """Every value times the one released bit. With say_withheld the bit is stored too, so the
    recipient can tell a withheld model from a trained one; otherwise a withheld result looks
    exactly like the result of an empty join."""
    sizes = [len(s) for s in shares]
    flat = Additive(np.concatenate([np.asarray(s, U64) for s in shares]))
    kept = await mul(party, Additive(np.broadcast_to(released, flat.shape)), flat)
    parts = cast(list[Additive], np.split(kept, np.cumsum(sizes)[:-1]))
    if say_withheld:
        columns, parts = [*columns, OutputColumn(RELEASED, "count")], [*parts, released]
    return Output(kind, list(columns), list(parts), party.fixed.frac_bits, [], info or {})


@_release_stage
async def release_groups(party: Party, columns: list[OutputColumn],
                         shares: dict[str, Additive], last_rows: Additive,
                         thresholds: Thresholds, *,
                         ledger: StatisticsLedger | None, means=()) -> Output:
    """Group-by: one row per group that passes the rules, running values gone.

    `shares` maps output names to the group-by's columns (each group's values on its last
    row, marked by last_rows). Without noise a group needs every table's number of entities to
    reach its k. With a noise ledger each server adds its own noise to the counts and sums,
    and a group is kept only if its noisy count reaches the selection threshold (partition
    selection, so the set of released keys does not reveal a single tuple) or k, whichever is
    larger."""
    keep, info = last_rows, {}
    if ledger is None:
        passed = await meets(party, thresholds)
        if passed is not None:
            keep = await mul(party, keep, passed)
    else:
        described = {c.name: c for c in columns}
        aggregates = {name: values for name, values in shares.items() if name in ledger.sigmas}
        shares = {**shares, **add_noise(party, aggregates, ledger, described)}  # keys exact
        threshold = max(selection_threshold(sigma=ledger.sigmas["count"], tau=ledger.tau,
                                            delta=ledger.delta),
                        noisy_minimum(thresholds, ledger))
        keep = await mul(party, keep, await at_least(party, shares["count"], threshold))
        info = {"dp_ledger": ledger.as_dict(), "selection_threshold": threshold}
    names = [c.name for c in columns]
    return await release_rows(party, "aggregate", columns, [shares[n] for n in names], keep,
                              means=means, info=info)


@_release_stage
async def release_statistics(party: Party, columns: dict[str, OutputColumn],
                             values: dict[str, Additive], thresholds: Thresholds,
                             bin_thresholds: dict[str, Thresholds], *,
                             ledger: StatisticsLedger | None, kind: str = "statistics",
                             released: Additive | None = None,
                             info: dict | None = None) -> Output:
    """Statistics (and a model's metrics): every value withheld unless every table reaches its
    k (and unless `released`, a shared bit, is 1); each histogram bin withheld (zero, like an
    empty bin) unless it does. With a noise ledger (values then hold no min or max), each
    server adds its own noise to every value and the largest k applies to the noisy count and
    bin counts instead: exact entity counts would break the DP guarantee."""
    info = dict(info or {})
    if ledger is not None:
        values = add_noise(party, values, ledger, columns)
        k = {"count": noisy_minimum(thresholds, ledger)} if thresholds.sizes else {}
        thresholds = Thresholds(k, {"count": values["count"]})
        bin_thresholds = {name: Thresholds(k, {"count": values[name]})
                          for name in values if name.startswith("histogram(")}
        info["dp_ledger"] = ledger.as_dict()
    values = dict(values)
    for name, rules in bin_thresholds.items():
        passed = await meets(party, rules)
        if passed is None:
            continue
        if ledger is None:  # exact bins: one small bin withholds its whole histogram, else
            # the total and the other bins would give it back (complementary suppression)
            empty = await equal(party, values[name], Additive(np.zeros(len(values[name]), U64)))
            whole = await product(party, [Additive(bit[None]) for bit in passed + empty])
            passed = Additive(np.broadcast_to(whole, passed.shape))
        values[name] = await mul(party, values[name], passed)
    passed = await meets(party, thresholds)
    bits = [bit for bit in (released, passed) if bit is not None]
    released = await product(party, bits) if bits else party.public(np.ones(1, U64))
    return await release_values(party, kind, [columns[n] for n in values],
                                list(values.values()), released, info=info)
