"""The ring Z_2^64 and the fixed-point encoding of real numbers into it.

Arithmetic shares are numpy uint64 arrays; numpy's uint64 arithmetic wraps modulo 2^64, which
is exactly the ring. Signed values use two's complement.

Fixed point with f fractional bits (default 16) encodes v as round(v * 2^f) mod 2^64.
Documented range (f = 16):
- stored values and comparison operands: |v| < 2^(62 - f) = 2^46, so that x - y never
  overflows the signed 64-bit range and msb(x - y) is the sign of x - y;
- products fed to truncation: |a * b| < 2^(62 - 2f) = 2^30, because the truncation protocol
  (protocols/arithmetic.truncate) needs |x| < 2^62 before the shift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twofold.mpc.errors import TwofoldError

U64 = np.uint64  # the ring's dtype: every share, word and plane array is of it
PUBLIC_FACTOR_BITS = 12  # public constants are applied within a relative error of 2^-12
PRODUCT_LIMIT = 1 << 61  # products fed to truncation stay below this (it needs 2^62)


class PrecisionError(TwofoldError, ValueError):
    """A public constant that cannot be applied within the ring with enough precision."""


def public_factor(value: float, operand_bound: float, max_shift: int = 61) -> tuple[int, int]:
    """(factor, shift) with factor / 2^shift equal to value within a relative error of
    2^-PUBLIC_FACTOR_BITS, for multiplying a ring value of magnitude at most operand_bound by
    factor and truncating by shift. The shift is the largest (at most max_shift) that keeps the
    product below PRODUCT_LIMIT, so the constant gets every bit the operand leaves room for; a
    fixed shift (say 16 bits) rounds small constants to a fraction of themselves, or to zero."""
    if value == 0:
        return 0, 1
    bound = max(math.ceil(operand_bound), 1)
    shift = min(max_shift, math.floor(61 - math.log2(abs(value) * bound)))
    while shift >= 1 and bound * abs(round(value * 2.0 ** shift)) >= PRODUCT_LIMIT:
        shift -= 1
    where = f"{value:g} times values up to {operand_bound:g} (in units of the last fixed-point bit)"
    if shift < 1:
        raise PrecisionError(f"{where} leaves the ring")
    factor = round(value * 2.0 ** shift)
    error = abs(factor / 2.0 ** shift - value) / abs(value)
    if error > 2.0 ** -PUBLIC_FACTOR_BITS:
        raise PrecisionError(f"{where} can apply {value:g} only as {factor / 2.0 ** shift:g}, "
                             f"a relative error of {error:.2g}")
    return factor, shift


def truncated_range(low: int, high: int, shift: int) -> tuple[int, int]:
    """What truncating integers in [low, high] by shift bits gives on shares (truncate,
    fixed_mul and fixed_mul_public in protocols.arithmetic): the floor of the exact quotient
    or one above, so from the floor of low's to the ceiling of high's."""
    return low >> shift, -(-high >> shift)


def as_ring(values) -> np.ndarray:
    """Integers (any sign, within int64) as ring elements, two's complement."""
    array = np.asarray(values)
    if array.dtype == U64:
        return array
    return array.astype(np.int64).view(U64)


def to_signed(ring_values: np.ndarray) -> np.ndarray:
    """Ring elements read as signed 64-bit integers."""
    return np.asarray(ring_values, dtype=U64).view(np.int64)


@dataclass(frozen=True)
class FixedPoint:
    """Fixed-point encoding with `frac_bits` fractional bits."""

    frac_bits: int = 16

    @property
    def scale(self) -> float:
        return float(1 << self.frac_bits)

    @property
    def max_abs(self) -> float:
        """Largest magnitude that may be stored and compared (exclusive)."""
        return float(2 ** (62 - self.frac_bits))

    @property
    def max_product(self) -> float:
        """Largest magnitude of a product that may be truncated (exclusive)."""
        return float(2 ** (62 - 2 * self.frac_bits))

    def encode(self, values) -> np.ndarray:
        array = np.asarray(values, dtype=np.float64)
        if not np.all(np.isfinite(array)):
            raise ValueError("fixed-point encoding: NaN or infinite value")
        if array.size and np.max(np.abs(array)) >= self.max_abs:
            raise ValueError(
                f"fixed-point encoding: |value| must be below 2^{62 - self.frac_bits} "
                f"with {self.frac_bits} fractional bits"
            )
        return np.rint(array * self.scale).astype(np.int64).view(U64)

    def decode(self, ring_values: np.ndarray) -> np.ndarray:
        return to_signed(ring_values).astype(np.float64) / self.scale
