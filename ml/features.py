"""Features scaled by the public ranges in the schema, so every feature lies in [-1, 1]
(divided further by sqrt(d) under differential privacy, so a row's norm is at most 1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mpc.party import Party
from mpc.protocols.arithmetic import truncate

U64 = np.uint64
EXTRA_BITS = 16  # precision of the public scale factors


@dataclass(frozen=True)
class Scaling:
    """x_scaled = (x - center) * factor, per feature; the intercept column is 1 * factor."""

    centers: tuple[float, ...]
    factors: tuple[float, ...]


def scaling_for(ranges: list[tuple[float, float]], unit_norm: bool) -> Scaling:
    """Ranges of the features (the intercept last, as (1, 1))."""
    extra = 1 / np.sqrt(len(ranges)) if unit_norm else 1.0
    centers, factors = [], []
    for low, high in ranges:
        half = (high - low) / 2
        centers.append(0.0 if half == 0 else (low + high) / 2)
        factors.append(extra if half == 0 else extra / half)
    return Scaling(tuple(centers), tuple(factors))


async def scale(party: Party, columns: list[np.ndarray], scaling: Scaling) -> np.ndarray:
    """(rows x d) matrix of scaled fixed-point shares; one truncation for all features."""
    fixed = party.fixed
    shifted = np.stack([c - party.public(np.full(len(c), fixed.encode(center)))
                        for c, center in zip(columns, scaling.centers)], axis=1)
    factors = np.rint(np.array(scaling.factors) * 2.0 ** EXTRA_BITS).astype(np.int64).view(U64)
    return await truncate(party, shifted * factors[None, :], EXTRA_BITS)
