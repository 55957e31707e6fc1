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

import functools
import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

from twofold.mpc.privacy import Privacy, PrivacyError
from twofold.mpc.ring import FixedPoint, truncated_range

MULTIPLIERS = (1e-3, 1e4)  # the noise multipliers any calibration may reach


def accountant_library():
    """dp-accounting and its RDP accountant, imported when first used: they pull in much of
    scipy, which every `twofold` command would otherwise wait for on start."""
    import dp_accounting
    from dp_accounting import rdp
    return dp_accounting, rdp


NOISE_TAILS = 24  # both servers' noise stays within 12 standard deviations each (p < 1e-32)


@dataclass(frozen=True)
class Charge:
    """What differentially private work spends from a privacy budget, by basic composition:
    one mechanism's (epsilon, delta), or a job's, the sum of its mechanisms'."""

    epsilon: float
    delta: float

    def __add__(self, other: Charge) -> Charge:
        return Charge(self.epsilon + other.epsilon, self.delta + other.delta)

    def as_dict(self) -> dict:
        return asdict(self)


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


def calibrate(*, privacy: Privacy, clip: float, iterations: int, batch_size: int, rows: int,
              min_join_size: int) -> Ledger:
    if iterations < 1 or not 0 < batch_size <= rows:
        raise PrivacyError(f"training: iterations and batch_size must be positive, batch_size "
                           f"{batch_size} at most the {rows} rows")
    rate = batch_size / rows
    group_rate = 1 - (1 - rate) ** privacy.tau
    multiplier = _training_multiplier(privacy, group_rate, iterations)
    return Ledger(privacy.epsilon, privacy.delta, privacy.tau, clip, iterations, rate,
                  group_rate, multiplier, multiplier * privacy.tau * clip, rows, min_join_size)


@functools.lru_cache(maxsize=64)  # submission and the job calibrate the same training
def _training_multiplier(privacy: Privacy, group_rate: float, iterations: int) -> float:
    dp_accounting, _ = accountant_library()

    def event(noise_multiplier):
        return dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(
            group_rate, dp_accounting.GaussianDpEvent(noise_multiplier)), iterations)

    return _smallest_multiplier("training", privacy, event, "raise epsilon or delta, or take "
                                "fewer iterations or a smaller batch_size")


def _smallest_multiplier(mechanism: str, privacy: Privacy, event,
                         remedy: str = "raise epsilon or delta") -> float:
    """The smallest noise multiplier m in MULTIPLIERS at which event(m) meets (epsilon, delta)
    under the RDP accountant, or the lowest bound if that one does. A calibration that cannot
    succeed is refused in one line before any search: the accountant's errors name its
    internals."""
    dp_accounting, rdp = accountant_library()
    low, high = MULTIPLIERS

    def epsilon_at(multiplier: float) -> float:
        return rdp.RdpAccountant().compose(event(multiplier)).get_epsilon(privacy.delta)

    if not epsilon_at(high) <= privacy.epsilon:
        raise PrivacyError(f"{mechanism}: epsilon {privacy.epsilon:g} at delta "
                           f"{privacy.delta:g} needs a noise multiplier above {high:g}; "
                           f"{remedy}")
    try:  # the root lies below high: a search up from 1 takes about 15 accountant runs, a
        # bracket [1e-3, 1e4] 25
        return dp_accounting.calibrate_dp_mechanism(
            rdp.RdpAccountant, event, privacy.epsilon, privacy.delta,
            bracket_interval=dp_accounting.LowerEndpointAndGuess(low, 1.0))
    except (ValueError, dp_accounting.mechanism_calibration.NoBracketIntervalFoundError):
        if epsilon_at(low) <= privacy.epsilon:  # no root above low: low itself is enough
            return low
        raise


def spent_epsilon(ledger: Ledger) -> float:
    """Re-derive epsilon from the ledger (what a recipient can check)."""
    dp_accounting, rdp = accountant_library()
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


@functools.lru_cache(maxsize=64)  # submission and the job calibrate the same noise
def gaussian_multiplier(privacy: Privacy, mechanism: str = "noise") -> float:
    """Noise multiplier m of one Gaussian mechanism of L2 sensitivity 1 meeting (epsilon,
    delta) under the RDP accountant."""
    dp_accounting, _ = accountant_library()
    return _smallest_multiplier(mechanism, privacy, dp_accounting.GaussianDpEvent)


def calibrate_blocks(*, privacy: Privacy, row_bounds: dict[str, float]) -> StatisticsLedger:
    """Released sums over rows, block by block: row_bounds gives the most one row adds to
    each (in absolute value, as computed in fixed point: encoding and truncations included).
    One primary tuple adds or removes at most tau rows, so block k has sensitivity
    Delta_k = tau * bound_k; the K blocks divided by their sensitivities form one Gaussian
    mechanism of L2 sensitivity sqrt(K). Used for group-by too: the tau rows may fall in
    different groups, but the L2 norm of each block's change over all groups is still at most
    its sensitivity."""
    sensitivities = {name: privacy.tau * bound for name, bound in row_bounds.items()}
    multiplier = gaussian_multiplier(privacy)
    spread = math.sqrt(len(sensitivities))
    sigmas = {name: multiplier * spread * value for name, value in sensitivities.items()}
    return StatisticsLedger(privacy.epsilon, privacy.delta, privacy.tau, multiplier,
                            sensitivities, sigmas)


def calibrate_statistics(*, privacy: Privacy, bounds: dict[str, float], histograms: list[str],
                         frac_bits: int, squares: bool = True) -> StatisticsLedger:
    """bounds: column -> largest declared |value|. Each row adds 1 to the count and to one bin
    of each histogram, its stored x to a column's sum (exactly) and, with squares, x * x
    truncated by frac_bits to its sum of squares (a group-by releases none: noise on blocks
    it does not release would only widen the others'). Stored values are round(x 2^f)
    (FixedPoint.encode), so |x| may exceed the bound by half a unit of the last bit, and the
    truncation may add one unit to x^2."""
    fixed = FixedPoint(frac_bits)
    row_bounds = {"count": 1.0}
    for column, bound in bounds.items():
        stored = int(fixed.encode(bound).view(np.int64))  # in units of the last bit
        row_bounds[f"sum({column})"] = stored / fixed.scale
        if squares:
            square = truncated_range(0, stored * stored, frac_bits)[1]
            row_bounds[f"sumsq({column})"] = square / fixed.scale
    row_bounds.update({f"histogram({c})": 1.0 for c in histograms})
    return calibrate_blocks(privacy=privacy, row_bounds=row_bounds)


def count_sigma(privacy: Privacy, mechanism: str = "size check") -> float:
    """Each server's noise on a count that one tuple moves by at most tau (a noisy size check
    or a noisy group count used only for selection)."""
    return gaussian_multiplier(privacy, mechanism) * privacy.tau


def selection_threshold(*, sigma: float, tau: int, delta: float) -> float:
    """Threshold T for releasing a group whose noisy count c + n0 + n1 (each server's n_i
    ~ N_Z(0, sigma^2)) reaches T.

    A group present in one database and absent from its neighbour has c <= tau, and one tuple
    can create at most tau such groups. c + n0 + n1 >= tau + 2 z sigma needs n0 >= z sigma or
    n1 >= z sigma, so a group of at most tau rows is released with probability at most
    2 Q(z), and 2 tau Q(z) <= delta bounds the whole selection, even for someone who knows one
    server's noise (they must still get past the other's). One unit of margin covers the
    discrete Gaussian's heavier lattice tail."""
    z = NormalDist().inv_cdf(1 - delta / (2 * tau))
    return tau + 2 * z * sigma + 1
