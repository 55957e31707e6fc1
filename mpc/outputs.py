"""Job outputs as a server stores them and a recipient receives them: the format both sides
share (servers/release.py makes outputs, client/results.py decodes them).

An output is a list of named columns of shares, each with a decoding ("fixed" point, a
"categorical" vocabulary, a "key" code, or a "count"): row outputs (rows, aggregate,
predictions) carry the indicator "_valid", which is 1 on the result's rows and 0 on rows of
zeros, and a model carries "_released", 0 when its join-size check failed. `meta()` is what
travels with the shares (JSON on disk, the reply's header on the wire).

It lives here, beside the wire format, because the client reads it too: the client depends on
mpc, never on servers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import cast

import numpy as np

from twofold.mpc.ring import U64
from twofold.mpc.shares import Additive

RELEASED = "_released"  # a model's bit: 0 when its join-size check failed


@dataclass(frozen=True)
class OutputColumn:
    name: str
    decoding: str  # fixed, categorical, key, count
    vocabulary: tuple[str, ...] = ()


@dataclass
class Output:
    kind: str  # rows, aggregate, statistics, model, predictions, metrics
    columns: list[OutputColumn]
    shares: list[Additive]
    frac_bits: int
    means: list[str]  # mean(c) = sum(c) / count, derived by the recipient
    info: dict = field(default_factory=dict)  # model: features, scaling, level, DP ledger

    def column(self, name: str) -> Additive:
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
    def load(cls, folder: Path) -> Output:
        meta = json.loads((folder / "meta.json").read_text())
        shares = [np.fromfile(folder / f"{i}.u64", dtype=U64) for i in range(len(meta["columns"]))]
        return cls.from_meta(meta, shares)

    @classmethod
    def from_meta(cls, meta: dict, shares: list[np.ndarray]) -> Output:
        """From its meta and its shares as stored or received (uint64 arrays)."""
        columns = [OutputColumn(c["name"], c["decoding"], tuple(c["vocabulary"]))
                   for c in meta["columns"]]
        return cls(meta["kind"], columns, cast(list[Additive], shares), meta["frac_bits"],
                   meta["means"], meta.get("info", {}))
