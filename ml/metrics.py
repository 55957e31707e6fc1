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

from mpc.party import Party
from mpc.protocols.arithmetic import fixed_mul, fixed_mul_public, mul
from mpc.protocols.boolean import clamp, flag_rows, less_than

U64 = np.uint64
LINEAR_SUMS = ("sum_squared_error", "sum_absolute_error", "sum_label", "sum_label_squared")
LOGISTIC_COUNTS = ("true_positive", "false_positive", "false_negative")


def _public(party: Party, value: float, n: int) -> np.ndarray:
    return party.public(np.full(n, party.fixed.encode(value)))


async def linear_sums(party: Party, score: np.ndarray, label: np.ndarray, valid: np.ndarray,
                      label_range: tuple[float, float], classes: bool) -> dict[str, np.ndarray]:
    """score: predictions on the label scaled to [0, 1]; label in its own units."""
    low, high = label_range
    n = len(score)
    within = await clamp(party, score, _public(party, 0.0, n),
                         _public(party, 1.0, n))  # the label's range, scaled
    predicted = await fixed_mul_public(party, within, high - low, 1.0) + _public(party, low, n)
    error = predicted - label
    negative = await less_than(party, error, party.public(np.zeros(n, U64)))
    absolute = error - 2 * await mul(party, negative, error)
    squares = await fixed_mul(party, np.stack([error, label]), np.stack([error, label]))
    terms = {"sum_squared_error": squares[0], "sum_absolute_error": absolute,
             "sum_label": label, "sum_label_squared": squares[1]}
    if classes:  # right iff -1/2 <= predicted - label < 1/2
        below_half, below_minus_half = await less_than(
            party, np.stack([error, error]), np.stack([_public(party, 0.5, n),
                                                       _public(party, -0.5, n)]))
        terms["correct"] = below_half - below_minus_half  # a count, not fixed point
    sums = await flag_rows(party, valid, np.stack(list(terms.values())))
    return {name: total.sum(dtype=U64, keepdims=True) for name, total in zip(terms, sums)}


async def logistic_counts(party: Party, probability: np.ndarray, label: np.ndarray,
                          valid: np.ndarray) -> dict[str, np.ndarray]:
    """probability and a 0/1 label, both fixed point."""
    n = len(probability)
    half = _public(party, 0.5, n)
    below = await less_than(party, np.stack([probability, label]), np.stack([half, half]))
    one = party.public(np.ones(n, U64))
    said, truth = one - below[0], one - below[1]
    both = await mul(party, said, truth)
    said_valid, truth_valid, both_valid = await flag_rows(party, valid,
                                                          np.stack([said, truth, both]))
    totals = {"true_positive": both_valid, "false_positive": said_valid - both_valid,
              "false_negative": truth_valid - both_valid}
    return {name: total.sum(dtype=U64, keepdims=True) for name, total in totals.items()}


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
