"""A model's quality on shared rows, computed inside MPC: only sums are released, from which
the recipient derives the metrics.

- linear: predictions in the label's units, clamped to its declared range (so that one row
  moves every sum by a bounded amount, which differential privacy needs); the sums of squared
  and absolute errors, of labels and of squared labels (MSE, MAE and R^2 follow), and, for an
  integer label, the number of predictions that round to the right class (ties go up);
- logistic: the counts of true positives, false positives and false negatives at the
  threshold 1/2 (true negatives, accuracy, precision and recall follow).
Every sum is over the real rows only (each term times the row's indicator).
"""

from __future__ import annotations

import numpy as np

from twofold.mpc.party import Party
from twofold.mpc.protocols.arithmetic import fixed_mul, fixed_mul_public, mul
from twofold.mpc.protocols.boolean import clamp, flag_rows, less_than
from twofold.mpc.ring import U64, FixedPoint, public_factor, truncated_range
from twofold.mpc.shares import Additive

LOGISTIC_COUNTS = ("true_positive", "false_positive", "false_negative")


def _public(party: Party, value: float, n: int) -> Additive:
    return party.public(np.full(n, party.fixed.encode(value)))


async def linear_sums(party: Party, score: Additive, label: Additive, valid: Additive,
                      label_range: tuple[float, float], classes: bool) -> dict[str, Additive]:
    """score: predictions on the label scaled to [0, 1]; label in its own units."""
    low, high = label_range
    n = len(score)
    within = await clamp(party, score, _public(party, 0.0, n),
                         _public(party, 1.0, n))  # the label's range, scaled
    predicted = await fixed_mul_public(party, within, high - low, 1.0) + _public(party, low, n)
    error = Additive(predicted - label)
    negative = await less_than(party, error, party.public(np.zeros(n, U64)))
    absolute = error - 2 * await mul(party, negative, error)
    pairs = Additive(np.stack([error, label]))
    squares = await fixed_mul(party, pairs, pairs)
    terms = {"sum_squared_error": squares[0], "sum_absolute_error": absolute,
             "sum_label": label, "sum_label_squared": squares[1]}
    if classes:  # right iff -1/2 <= predicted - label < 1/2
        below_half, below_minus_half = await less_than(
            party, Additive(np.stack([error, error])),
            Additive(np.stack([_public(party, 0.5, n), _public(party, -0.5, n)])))
        terms["correct"] = below_half - below_minus_half  # a count, not fixed point
    sums = await flag_rows(party, valid, Additive(np.stack(list(terms.values()))))
    return {name: Additive(total.sum(dtype=U64, keepdims=True))
            for name, total in zip(terms, sums, strict=True)}


async def logistic_counts(party: Party, probability: Additive, label: Additive,
                          valid: Additive) -> dict[str, Additive]:
    """probability and a 0/1 label, both fixed point."""
    n = len(probability)
    half = _public(party, 0.5, n)
    below = await less_than(party, Additive(np.stack([probability, label])),
                            Additive(np.stack([half, half])))
    one = party.public(np.ones(n, U64))
    said, truth = Additive(one - below[0]), Additive(one - below[1])
    both = await mul(party, said, truth)
    said_valid, truth_valid, both_valid = await flag_rows(
        party, valid, Additive(np.stack([said, truth, both])))
    totals = {"true_positive": both_valid, "false_positive": said_valid - both_valid,
              "false_negative": truth_valid - both_valid}
    return {name: Additive(total.sum(dtype=U64, keepdims=True))
            for name, total in totals.items()}


def row_bounds(model: str, label: tuple[int, int], label_range: tuple[float, float],
               fixed: FixedPoint, classes: bool) -> dict[str, float]:
    """The most one row adds to each released sum, in absolute value, as computed in fixed
    point (ml.dp.calibrate_blocks turns them into sensitivities). label: the range of the
    label's stored values, in units of the last bit (Expression.stored_range: the encoding of
    its columns and its own truncations included). Counts add 0 or 1; linear_sums's
    prediction is the clamped score w in [0, 2^f] times the public factor of (high - low),
    truncated (the floor or one unit above), plus the encoding of low; its error against the
    label is exact, and each square is truncated once more."""
    if model == "logistic":
        return {name: 1.0 for name in ("count", *LOGISTIC_COUNTS)}
    low, high = label_range
    factor, shift = public_factor(high - low, fixed.scale)  # as fixed_mul_public's in linear_sums
    lowest = int(fixed.encode(low).view(np.int64))
    scaled = truncated_range(0, int(fixed.scale) * factor, shift)
    predicted = (lowest + scaled[0], lowest + scaled[1])
    error = max(predicted[1] - label[0], label[1] - predicted[0])
    largest = max(-label[0], label[1])
    units = {"sum_squared_error": truncated_range(0, error * error, fixed.frac_bits)[1],
             "sum_absolute_error": error, "sum_label": largest,
             "sum_label_squared": truncated_range(0, largest * largest, fixed.frac_bits)[1]}
    bounds = {"count": 1.0, **{name: bound / fixed.scale for name, bound in units.items()}}
    return {**bounds, "correct": 1.0} if classes else bounds


def derive(kind: str, sums: dict[str, float], count: int) -> dict[str, float | int | None]:
    """The recipient's metrics from the released sums (decoded: counts as integers, sums as
    floats), noisy ones included."""
    if count <= 0:
        return {"count": 0}
    if kind == "logistic":
        tp, fp, fn = (max(int(round(sums[name])), 0) for name in LOGISTIC_COUNTS)
        tn = max(count - tp - fp - fn, 0)
        return {"count": count, "accuracy": (tp + tn) / count,
                "precision": tp / (tp + fp) if tp + fp else None,
                "recall": tp / (tp + fn) if tp + fn else None,
                "true_positive": tp, "false_positive": fp, "false_negative": fn,
                "true_negative": tn}
    total = sums["sum_label_squared"] - sums["sum_label"] ** 2 / count
    metrics = {"count": count, "mse": sums["sum_squared_error"] / count,
               "mae": sums["sum_absolute_error"] / count,
               "r2": 1 - sums["sum_squared_error"] / total if total > 0 else None}
    if "correct" in sums:
        metrics["accuracy"] = sums["correct"] / count
    return metrics
