"""Differential-privacy parameters, one value type for every layer: job specs, owners' rules
and budgets, and the calibrations in ml/dp.py."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from twofold.mpc.errors import TwofoldError

MAX_EPSILON = 1000.0  # a budget may total more than one job's epsilon

class PrivacyError(TwofoldError, ValueError):
    """Privacy parameters that cannot be met or are out of range."""


def _in_range(name: str, value, high: float, *, below: bool = False) -> None:
    """value in (0, high], or in (0, high) when below."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PrivacyError(f"{name} must be a number, got {value!r}")
    if not 0 < value < high if below else not 0 < value <= high:
        raise PrivacyError(f"{name} must be in (0, {high:g}{')' if below else ']'}, "
                           f"got {value!r}")


@dataclass(frozen=True, kw_only=True)
class Privacy:
    """Differential-privacy parameters, checked once here and used by job specs, owners'
    policies and budgets, and every calibration: (epsilon, delta) and tau, the most join rows
    one tuple of the primary private table may contribute (extra rows are dropped on shares).
    Keyword-only, so epsilon and delta cannot be swapped by position."""

    epsilon: float
    delta: float
    tau: int = 1

    def __post_init__(self):
        _in_range("epsilon", self.epsilon, MAX_EPSILON)
        _in_range("delta", self.delta, 1.0, below=True)
        if isinstance(self.tau, bool) or not isinstance(self.tau, int) or self.tau < 1:
            raise PrivacyError(f"tau must be a positive integer, got {self.tau!r}")

    def as_dict(self) -> dict:
        return asdict(self)
