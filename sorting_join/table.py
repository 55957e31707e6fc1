"""A table of shared columns as the relational operators see it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from twofold.mpc.shares import Additive


@dataclass
class SharedTable:
    """Columns of additive shares keyed by qualified name ("table.column"), and the shared
    indicator `valid` (1 for a real row, 0 for a dummy one). All have the same length."""

    columns: dict[str, Additive] = field(default_factory=dict)
    valid: Additive = field(default_factory=lambda: Additive(np.zeros(0, np.uint64)))

    @property
    def rows(self) -> int:
        return len(self.valid)

    def column(self, name: str) -> Additive:
        return self.columns[name]
