"""Noise that neither server chooses alone: each server draws its own samples from its CSPRNG.

`discrete_gaussian` samples the discrete Gaussian N_Z(0, sigma^2) on the integers (here, the
fixed-point grid) with the rejection sampler of Canonne, Kamath and Steinke (2020): a discrete
Laplace proposal (the difference of two geometric variables) accepted with probability
exp(-(|y| - sigma^2/t)^2 / (2 sigma^2)). Outputs are exact integers, so the floating-point
leaks of continuous samplers (Mironov 2012) cannot occur. The geometric variables and the
acceptance test use 53-bit uniforms from AES-CTR and float64 logarithms and exponentials, whose
relative error below 2^-50 moves each sample's distribution by a statistical distance of that
order: negligible next to the delta of any release.
"""

from __future__ import annotations

import numpy as np

from twofold.mpc.prg import Prg


def _uniform(prg: Prg, count: int) -> np.ndarray:
    """Uniform floats in (0, 1), 53 random bits each."""
    return ((prg.words(count) >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53


def discrete_gaussian(prg: Prg, sigma: float, count: int) -> np.ndarray:
    """count independent samples of N_Z(0, sigma^2), as int64."""
    if sigma <= 0:
        return np.zeros(count, np.int64)
    t = np.floor(sigma) + 1.0
    keep_rate = -np.expm1(-1.0 / t)  # geometric success probability 1 - exp(-1/t)
    out = np.empty(0, np.int64)
    while len(out) < count:
        batch = 2 * (count - len(out)) + 16
        first = np.floor(np.log(_uniform(prg, batch)) / np.log1p(-keep_rate))
        second = np.floor(np.log(_uniform(prg, batch)) / np.log1p(-keep_rate))
        proposal = first - second  # discrete Laplace with scale t
        accept = _uniform(prg, batch) < np.exp(
            -(np.abs(proposal) - sigma * sigma / t) ** 2 / (2 * sigma * sigma))
        out = np.concatenate([out, proposal[accept].astype(np.int64)])
    return out[:count]
