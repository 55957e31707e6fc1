"""Differential privacy for training (level 5): the bound on each example's gradient, the noise
calibration by a real accountant, and the ledger shown to recipients.

Neighbouring databases differ in one tuple of the primary private table, which produces at most
tau join rows (enforced on shares: extra rows are dropped). Level 5 samples every iteration's
batch by Poisson sampling over the N compacted join rows (each row independently with
probability q = batch / N, positions drawn from public randomness), and dummy rows contribute a
zero gradient. One primary tuple is therefore a group of at most tau rows, each sampled
independently: the iteration is dominated by a Poisson-subsampled Gaussian mechanism with
sampling rate 1 - (1 - q)^tau and sensitivity tau * C (by joint convexity of the Renyi
divergence over the group's possible contributions). T iterations compose; Google's
dp-accounting (RDP accountant) finds the smallest noise multiplier that meets (epsilon, delta).

Purification's duplicates are not used at level 5: every row's number of copies depends on |J|,
so one tuple more or less would move the copies of all others, which no accountant covers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import dp_accounting
from dp_accounting import rdp


NOISE_TAILS = 24  # both servers' noise stays within 12 standard deviations each (p < 1e-32)


class PrivacyError(ValueError):
    """Privacy parameters that cannot be met or are out of range."""


@dataclass(frozen=True)
class Ledger:
    """Everything a recipient needs to check the guarantee."""

    epsilon: float
    delta: float
    tau: int
    clip: float  # C: bound on one join row's gradient, fixed-point error included
    iterations: int
    sampling_rate: float  # q, per join row per iteration
    group_sampling_rate: float  # 1 - (1 - q)^tau
    noise_multiplier: float
    sigma: float  # standard deviation of each server's noise, per coordinate
    rows: int  # N, the public number of join rows sampled from
    min_join_size: int  # the declared lower bound on |J|, checked on shares
    accountant: str = "RDP (dp-accounting), Poisson subsampled Gaussian, add/remove one tuple"

    def as_dict(self) -> dict:
        return asdict(self)


def gradient_bound(residual_bound: float, features: int, frac_bits: int) -> float:
    """Bound on one row's gradient ||err * x|| in fixed point: |err| <= R exactly (clamped),
    ||x|| <= 1 + sqrt(d) 2^-f (scaled features, one rounding each), and the batch sum's one
    rounding per coordinate moves it by at most 2 sqrt(d) 2^-f."""
    ulp = math.sqrt(features) * 2.0 ** -frac_bits
    return residual_bound * (1 + ulp) + 2 * ulp


def calibrate(*, epsilon: float, delta: float, tau: int, clip: float, iterations: int,
              batch_size: int, rows: int, min_join_size: int) -> Ledger:
    if not 0 < epsilon <= 100:
        raise PrivacyError(f"epsilon must be in (0, 100], got {epsilon}")
    if not 0 < delta < 1:
        raise PrivacyError(f"delta must be in (0, 1), got {delta}")
    if tau < 1 or iterations < 1 or not 0 < batch_size <= rows:
        raise PrivacyError("tau, iterations and batch size must be positive, batch <= rows")
    rate = batch_size / rows
    group_rate = 1 - (1 - rate) ** tau

    def event(noise_multiplier):
        return dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(
            group_rate, dp_accounting.GaussianDpEvent(noise_multiplier)), iterations)

    try:
        multiplier = dp_accounting.calibrate_dp_mechanism(
            rdp.RdpAccountant, event, epsilon, delta,
            bracket_interval=dp_accounting.ExplicitBracketInterval(1e-3, 1e4))
    except (ValueError, dp_accounting.NoBracketIntervalFoundError) as error:
        raise PrivacyError(f"cannot reach epsilon {epsilon} at delta {delta}: {error}") from None
    return Ledger(epsilon, delta, tau, clip, iterations, rate, group_rate, multiplier,
                  multiplier * tau * clip, rows, min_join_size)


def spent_epsilon(ledger: Ledger) -> float:
    """Re-derive epsilon from the ledger (what a recipient can check)."""
    accountant = rdp.RdpAccountant()
    accountant.compose(dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(
        ledger.group_sampling_rate, dp_accounting.GaussianDpEvent(ledger.noise_multiplier)),
        ledger.iterations))
    return accountant.get_epsilon(ledger.delta)


@dataclass(frozen=True)
class StatisticsLedger:
    """Per released block (the count, each sum, each sum of squares, each histogram): its
    sensitivity Delta_k for one primary tuple and its noise sigma_k = m sqrt(K) Delta_k, where
    K blocks each divided by Delta_k form a vector of L2 sensitivity sqrt(K)."""

    epsilon: float
    delta: float
    tau: int
    noise_multiplier: float  # m, for a Gaussian of sensitivity 1
    sensitivities: dict[str, float]
    sigmas: dict[str, float]  # each server's noise per block, in the block's units
    accountant: str = "RDP (dp-accounting), one Gaussian mechanism, add/remove one tuple"

    def as_dict(self) -> dict:
        return asdict(self)


def calibrate_statistics(*, epsilon: float, delta: float, tau: int,
                         bounds: dict[str, float], histograms: list[str]) -> StatisticsLedger:
    """bounds: column -> largest |value|. One primary tuple adds or removes at most tau rows;
    each row adds 1 to the count and to one bin of each histogram, x to a column's sum and
    x^2 to its sum of squares."""
    if not 0 < epsilon <= 100 or not 0 < delta < 1 or tau < 1:
        raise PrivacyError("need 0 < epsilon <= 100, 0 < delta < 1 and tau >= 1")
    sensitivities = {"count": float(tau)}
    for column, bound in bounds.items():
        sensitivities[f"sum({column})"] = tau * bound
        sensitivities[f"sumsq({column})"] = tau * bound * bound
    sensitivities.update({f"histogram({c})": float(tau) for c in histograms})
    multiplier = dp_accounting.calibrate_dp_mechanism(
        rdp.RdpAccountant, dp_accounting.GaussianDpEvent, epsilon, delta,
        bracket_interval=dp_accounting.ExplicitBracketInterval(1e-3, 1e6))
    spread = math.sqrt(len(sensitivities))
    sigmas = {name: multiplier * spread * value for name, value in sensitivities.items()}
    return StatisticsLedger(epsilon, delta, tau, multiplier, sensitivities, sigmas)
