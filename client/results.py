"""A recipient's view of a job's output: both servers' shares reconstructed and decoded on
its own machine, as a Result that prints as CSV or JSON, becomes a pandas DataFrame, or, for a
model, a scikit-learn estimator.

Row outputs (rows, aggregate, predictions) drop their zero rows and sort the rest, a
convenience: what the servers store is already exactly the result (servers/release.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from twofold import models
from twofold.ml.metrics import derive
from twofold.ml.model import ModelDescription
from twofold.mpc.outputs import RELEASED, Output, OutputColumn
from twofold.mpc.ring import U64, FixedPoint, to_signed
from twofold.owners.keys import HASHED_TAG
from twofold.owners.schema import INDICATOR

ROW_KINDS = ("rows", "aggregate", "predictions")


@dataclass(frozen=True)
class Result:
    """A revealed output: `data` is plain JSON-able values, with "kind" among rows, aggregate,
    predictions, statistics, model and metrics."""

    data: dict

    @property
    def kind(self) -> str:
        return self.data["kind"]

    def frame(self) -> pd.DataFrame:
        """Row kinds: their rows. Statistics: (name, statistic, value) rows. A model: its
        terms and coefficients. Metrics: (metric, value) rows."""
        if self.kind in ROW_KINDS:
            return pd.DataFrame(self.data["rows"])
        if self.kind == "statistics":
            records = []
            for name, value in self.data["values"].items():
                if isinstance(value, dict):
                    records += [(name, statistic, v) for statistic, v in value.items()]
                else:
                    records.append((name, "count", value))
            return pd.DataFrame({"name": [r[0] for r in records],
                                 "statistic": [r[1] for r in records],
                                 "value": _mixed([r[2] for r in records])})
        if self.kind == "model":
            if not self.data["released"]:
                return pd.DataFrame({"term": [], "coefficient": []})
            terms = {**self.data["coefficients"], "intercept": self.data["intercept"]}
            return pd.DataFrame({"term": list(terms), "coefficient": list(terms.values())})
        metrics = self.data["metrics"]
        return pd.DataFrame({"metric": list(metrics), "value": _mixed(list(metrics.values()))})

    def to_csv(self) -> str:
        return self.frame().to_csv(index=False)

    def to_json(self) -> str:
        return json.dumps(self.data, indent=1)

    def to_sklearn(self, raw: bool = False):
        """A model's fitted scikit-learn estimator (client/models.py); with raw, a pipeline
        that takes raw rows (columns named table.column or column) and computes the model's
        features from them, one-hot columns included."""
        if self.kind != "model":
            raise ValueError(f"a {self.kind} output is not a model")
        return models.to_sklearn(self.data, raw)


def _mixed(values: list) -> pd.Series:
    """Counts and measures in one column: counts stay integers (`count,5`, not `5.0`)."""
    return pd.Series(values, dtype=object)


def _decode_column(column: OutputColumn, values: np.ndarray, fixed: FixedPoint) -> list:
    if column.decoding == "fixed":  # to the decimals the encoding carries (4 at 16 bits)
        return np.round(fixed.decode(values), int(fixed.frac_bits * np.log10(2))).tolist()
    if column.decoding == "categorical":  # codes past the vocabulary decode to None
        names = np.array([*column.vocabulary, None], dtype=object)
        return names[np.minimum(values, U64(len(column.vocabulary))).astype(np.int64)].tolist()
    if column.decoding == "key":  # exact integers, or the hash code of another key
        return [v if v < HASHED_TAG else f"#{v:016x}" for v in values.tolist()]
    return to_signed(values).tolist()


def reveal(first: Output, second: Output) -> Result:
    """Reconstruct both servers' shares and decode: rows (zero rows dropped, the rest sorted)
    for row outputs, named values for statistics, the model, the metrics."""
    return Result(_decoded(first, second))


def _decoded(first: Output, second: Output) -> dict:
    fixed = FixedPoint(first.frac_bits)
    plain = {c.name: a + b
             for c, a, b in zip(first.columns, first.shares, second.shares, strict=True)}
    described = {c.name: c for c in first.columns}
    if first.kind == "statistics":
        return {**_statistics(plain, described, fixed), **first.info}
    if first.kind == "model":
        description = ModelDescription.from_dict(first.info)
        if int(plain.pop(RELEASED)[0]) != 1:
            return {"kind": "model", "released": False, "info": first.info,
                    "reason": "the join did not reach min_join_size "
                              f"{description.min_join_size}, or the training rows "
                              "held fewer entities of a table than its owner's minimum "
                              "group size: nothing was released"}
        return _model(fixed.decode(plain["weights"]), description, first.info)
    if first.kind == "metrics":
        sums = {name: _decode_column(described[name], values, fixed)[0]
                for name, values in plain.items()}
        metrics = derive(first.info["model"], sums, int(sums.pop("count")))
        return {"kind": "metrics", "metrics": metrics, **first.info}
    keep = plain.pop(INDICATOR) == 1
    order = np.lexsort([to_signed(values[keep]) for values in reversed(plain.values())])
    rows = {name: _decode_column(described[name], values[keep][order], fixed)
            for name, values in plain.items()}
    for column in first.means:
        rows[f"mean({column})"] = [total / count if count else None for total, count in
                                   zip(rows[f"sum({column})"], rows["count"], strict=True)]
    return {"kind": first.kind, "rows": rows, **first.info}


def _statistics(plain: dict, described: dict, fixed: FixedPoint) -> dict:
    count = int(to_signed(plain["count"])[0])  # noisy under DP, so possibly <= 0
    count = max(count, 0)
    values: dict = {"count": count}
    for name in plain:
        if name.startswith("sum("):
            column = name[4:-1]
            total = fixed.decode(plain[name])[0]
            squares = fixed.decode(plain[f"sumsq({column})"])[0]
            moments: dict[str, float | None] = {"mean": None, "variance": None, "std": None}
            if count:
                mean = total / count
                variance = max(squares / count - mean * mean, 0.0)
                moments = {"mean": mean, "variance": variance, "std": variance ** 0.5}
            values[column] = {"count": count, "sum": total, **moments}
            if f"min({column})" in plain:  # withheld under differential privacy
                values[column]["min"] = fixed.decode(plain[f"min({column})"])[0] if count else None
                values[column]["max"] = fixed.decode(plain[f"max({column})"])[0] if count else None
        elif name.startswith("histogram("):
            counts = to_signed(plain[name]).tolist()
            values[name] = dict(zip(described[name].vocabulary, counts, strict=True))
    return {"kind": "statistics", "values": values}


def _model(weights: np.ndarray, description: ModelDescription, info: dict) -> dict:
    """The model on raw feature values and in the label's units. Linear: prediction =
    intercept + sum_j coefficient_j x_j. Logistic: u = intercept + sum_j coefficient_j x_j,
    class 1 iff u >= 0, probability clamp(u / 4 + 1/2, 0, 1) (the sigmoid's approximation
    that training used). Also the weights on the scaled features, as trained. info: the
    output's info as stored (the description, and the job's DP charge if any)."""
    scaling = description.scaling
    centers, factors = np.array(scaling.centers), np.array(scaling.factors)
    coefficients = weights[:-1] * factors[:-1]
    intercept = weights[-1] * factors[-1] - float(np.sum(coefficients * centers[:-1]))
    if description.model == "linear":  # training scaled the label to [0, 1]
        low, high = description.label_range
        coefficients, intercept = coefficients * (high - low), low + intercept * (high - low)
    names = list(description.features)
    return {"kind": "model", "released": True, "model": description.model, "features": names,
            "label": description.label,
            "coefficients": dict(zip(names, coefficients.tolist(), strict=True)),
            "intercept": float(intercept),
            "scaling": {"centers": list(scaling.centers), "factors": list(scaling.factors)},
            "weights_on_scaled_features": dict(zip(names + ["intercept"], weights.tolist(),
                                                   strict=True)),
            "dp_ledger": description.dp_ledger, "info": info}
