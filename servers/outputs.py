"""Job outputs: what a server stores for the recipients (decoded by twofold/results.py).

An output is a list of named columns of shares, each with a decoding ("fixed" point, a
"categorical" vocabulary, a "key" code, or a "count"), as made by the release step
(servers/release.py): row outputs (rows, aggregate, predictions) carry the indicator "_valid",
which is 1 on the result's rows and 0 on rows of zeros, and a model carries "_released", 0 when
its join-size check failed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

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
    kind: str  # rows, aggregate, statistics, model, predictions, metrics
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
