"""Job outputs: what a server stores for the recipients, and how a recipient decodes it.

An output is a list of named columns of shares, each with a decoding ("fixed" point, a
"categorical" vocabulary, a "key" code, or a "count"), as made by the release step
(servers/release.py): row outputs (rows, aggregate, predictions) carry the indicator "_valid",
which is 1 on the result's rows and 0 on rows of zeros, and a model carries "_released", 0 when
its join-size check failed. Dropping the zero rows and sorting the rest is a convenience for
the recipient; the protection is the release step's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ml.metrics import derive
from mpc.ring import FixedPoint, to_signed
from owners.keys import HASHED_TAG
from owners.schema import INDICATOR, Schema
from sorting_join.predicate import column_type

U64 = np.uint64
RELEASED = "_released"  # a model's bit: 0 when its join-size check failed


@dataclass(frozen=True)
class OutputColumn:
    name: str
    decoding: str  # fixed, categorical, key, count
    vocabulary: tuple[str, ...] = ()


def describe(schema: Schema, name: str) -> OutputColumn:
    """How to decode a stored column or an aggregate named after one."""
    if name == "count" or name == INDICATOR:
        return OutputColumn(name, "count")
    inner = name[name.index("(") + 1:-1] if "(" in name else name
    column = column_type(schema, inner)
    if column.numeric or name.startswith(("sum(", "sumsq(", "min(", "max(")):
        return OutputColumn(name, "fixed")
    if name.startswith("histogram("):
        return OutputColumn(name, "count", column.values)
    return OutputColumn(name, column.type, column.values)


@dataclass
class Output:
    kind: str  # rows, aggregate, statistics, model, predictions, accuracy
    columns: list[OutputColumn]
    shares: list[np.ndarray]
    frac_bits: int
    means: list[str]  # mean(c) = sum(c) / count, derived by the recipient
    info: dict = field(default_factory=dict)  # model: features, scaling, level, DP ledger

    def column(self, name: str) -> np.ndarray:
        return self.shares[[c.name for c in self.columns].index(name)]

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for index, values in enumerate(self.shares):
            np.asarray(values, U64).tofile(folder / f"{index}.u64")
        (folder / "meta.json").write_text(json.dumps(self.meta()))

    def meta(self) -> dict:
        return {"kind": self.kind, "frac_bits": self.frac_bits, "means": self.means,
                "columns": [asdict(c) for c in self.columns], "info": self.info}

    @classmethod
    def load(cls, folder: Path) -> "Output":
        meta = json.loads((folder / "meta.json").read_text())
        shares = [np.fromfile(folder / f"{i}.u64", dtype=U64) for i in range(len(meta["columns"]))]
        return cls.from_meta(meta, shares)

    @classmethod
    def from_meta(cls, meta: dict, shares: list[np.ndarray]) -> "Output":
        columns = [OutputColumn(c["name"], c["decoding"], tuple(c["vocabulary"]))
                   for c in meta["columns"]]
        return cls(meta["kind"], columns, shares, meta["frac_bits"], meta["means"],
                   meta.get("info", {}))


def _decode_column(column: OutputColumn, values: np.ndarray, fixed: FixedPoint) -> list:
    if column.decoding == "fixed":  # to the decimals the encoding carries (4 at 16 bits)
        return np.round(fixed.decode(values), int(fixed.frac_bits * np.log10(2))).tolist()
    if column.decoding == "categorical":  # codes past the vocabulary decode to None
        names = np.array([*column.vocabulary, None], dtype=object)
        return names[np.minimum(values, U64(len(column.vocabulary))).astype(np.int64)].tolist()
    if column.decoding == "key":  # exact integers, or the hash code of another key
        return [v if v < HASHED_TAG else f"#{v:016x}" for v in values.tolist()]
    return to_signed(values).tolist()


def reveal(first: Output, second: Output) -> dict:
    """Reconstruct both servers' shares and decode: rows (zero rows dropped, the rest sorted)
    for row outputs, named values for statistics, weights for a model."""
    fixed = FixedPoint(first.frac_bits)
    plain = {c.name: a + b for c, a, b in zip(first.columns, first.shares, second.shares)}
    described = {c.name: c for c in first.columns}
    if first.kind == "statistics":
        return {**_statistics(plain, described, fixed), **first.info}
    if first.kind == "model":
        if int(plain.pop(RELEASED)[0]) != 1:
            return {"kind": "model", "released": False, "info": first.info,
                    "reason": "the join did not reach min_join_size "
                              f"{first.info.get('min_join_size')}: nothing was released"}
        return _model(fixed.decode(plain["weights"]), first.info)
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
                                   zip(rows[f"sum({column})"], rows["count"])]
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
            mean = total / count if count else None
            variance = max(squares / count - mean * mean, 0.0) if count else None
            values[column] = {
                "count": count, "sum": total, "mean": mean, "variance": variance,
                "std": variance ** 0.5 if count else None}
            if f"min({column})" in plain:  # withheld under differential privacy
                values[column]["min"] = fixed.decode(plain[f"min({column})"])[0] if count else None
                values[column]["max"] = fixed.decode(plain[f"max({column})"])[0] if count else None
        elif name.startswith("histogram("):
            counts = to_signed(plain[name]).tolist()
            values[name] = dict(zip(described[name].vocabulary, counts))
    return {"kind": "statistics", "values": values}


def _model(weights: np.ndarray, info: dict) -> dict:
    """The model on raw feature values and in the label's units. Linear: prediction =
    intercept + sum_j coefficient_j x_j. Logistic: u = intercept + sum_j coefficient_j x_j,
    class 1 iff u >= 0, probability clamp(u / 4 + 1/2, 0, 1) (the sigmoid's approximation
    that training used). Also the weights on the scaled features, as trained."""
    centers, factors = np.array(info["centers"]), np.array(info["factors"])
    coefficients = weights[:-1] * factors[:-1]
    intercept = weights[-1] * factors[-1] - float(np.sum(coefficients * centers[:-1]))
    if info["model"] == "linear":  # training scaled the label to [0, 1]
        low, high = info["label_range"]
        coefficients, intercept = coefficients * (high - low), low + intercept * (high - low)
    names = info["features"]
    return {"kind": "model", "released": True, "model": info["model"], "features": names,
            "label": info["label"], "coefficients": dict(zip(names, coefficients.tolist())),
            "intercept": float(intercept),
            "scaling": {"centers": info["centers"], "factors": info["factors"]},
            "weights_on_scaled_features": dict(zip(names + ["intercept"], weights.tolist())),
            "dp_ledger": info.get("dp_ledger"), "info": info}
