"""Features scaled by the public ranges in the schema, so every feature lies in [-1, 1]
(divided further by sqrt(d) under differential privacy, so a row's norm is at most 1 up to one
rounding per feature, the 2^-f term in ml/dp.gradient_bound).

The bound holds exactly on the ring: centers lie on the fixed-point grid, and each factor is
the largest multiple of 2^-k (k = scale_shift) whose product with the feature's largest
encoded distance from its center does not exceed 1 / sqrt(d). Factors rounded to 16 bits used
to let a row's norm reach 1.2, or turn a wide feature (range [0, 200000]) into 0, understating
the sensitivity that the privacy guarantee rests on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twofold.mpc.party import Party
from twofold.mpc.protocols.arithmetic import truncate
from twofold.mpc.ring import PUBLIC_FACTOR_BITS, U64, FixedPoint, PrecisionError
from twofold.mpc.shares import Additive

FLOAT_EXACT = 1 << 53  # factors stay exact as floats (they travel in the model's JSON)


class FeatureRangeError(PrecisionError):
    """A feature whose range is too wide to scale; names the feature."""

    def __init__(self, feature: str, message: str):
        super().__init__(message)
        self.feature = feature


def scale_shift(frac_bits: int) -> int:
    """Bits of the public factors: |encoded distance| * factor * 2^k stays below 2^(f + k + 1),
    which the truncation allows up to 2^62."""
    return 60 - frac_bits


@dataclass(frozen=True)
class Scaling:
    """x_scaled = (x - center) * factor, per feature; the intercept column is 1 * factor."""

    centers: tuple[float, ...]
    factors: tuple[float, ...]


def scaling_for(ranges: list[tuple[float, float]], unit_norm: bool, fixed: FixedPoint,
                names: list[str] | None = None) -> Scaling:
    """Ranges of the features (the intercept last, as (1, 1)). A constant feature (min = max)
    is divided by max(|value|, 1). Raises PrecisionError, naming the feature, for a range so
    wide that its factor would keep fewer than PUBLIC_FACTOR_BITS bits (FeatureRangeError)."""
    names = names or [f"feature {index + 1}" for index in range(len(ranges))]
    features = len(ranges) if unit_norm else 1
    unit, shift = 1 << fixed.frac_bits, scale_shift(fixed.frac_bits)
    centers, factors = [], []
    for name, (low, high) in zip(names, ranges, strict=True):
        low_code, high_code = (int(fixed.encode(v).view(np.int64)) for v in (low, high))
        if low_code == high_code:
            center, extent = 0, max(abs(low_code), unit)
        else:
            center = (low_code + high_code) // 2
            extent = max(high_code - center, center - low_code)
        # floor(2^(f+k) / (extent * sqrt(d))), in integers so the rounding is always down
        factor = min(math.isqrt((1 << 2 * (fixed.frac_bits + shift)) // (extent ** 2 * features)),
                     FLOAT_EXACT)
        if factor < 1 << PUBLIC_FACTOR_BITS:
            raise FeatureRangeError(name, f"{name}: its range [{low:g}, {high:g}] is too wide "
                                          f"to scale with {fixed.frac_bits} fractional bits")
        centers.append(center / unit)
        factors.append(factor / 2.0 ** shift)
    return Scaling(tuple(centers), tuple(factors))


async def scale(party: Party, columns: list[Additive], scaling: Scaling) -> Additive:
    """(rows x d) matrix of scaled fixed-point shares; one truncation for all features."""
    fixed = party.fixed
    shift = scale_shift(fixed.frac_bits)
    shifted = np.stack([c - party.public(np.full(len(c), fixed.encode(center)))
                        for c, center in zip(columns, scaling.centers, strict=True)], axis=1)
    factors = np.rint(np.array(scaling.factors) * 2.0 ** shift).astype(np.int64).view(U64)
    return await truncate(party, Additive(shifted * factors[None, :]), shift)
