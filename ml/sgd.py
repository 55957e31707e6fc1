"""SecureML-style minibatch SGD on shares: linear and logistic regression.

Per iteration, for the batch X_b (rows x d) and labels y_b:
    u = X_b w                         matrix triple, one truncation
    p = u (linear)  or  s(u) (logistic), s(u) = clamp(u / 4 + 1/2, 0, 1)
    e = clamp(p - y_b, -R, R) [* valid_b under DP, so dummy rows give nothing]
    g = X_b^T e                       matrix triple, exact (2f fractional bits)
    [+ each server's own discrete Gaussian noise, on the 2^-f grid, under DP]
    w = w - (lr / batch) g            one truncation; lr / batch gets every bit the gradient
                                      leaves (step_constant), refused if fewer than 12
The logistic approximation s is the tangent of the sigmoid at 0 clamped to [0, 1]: its largest
error is 0.119 (at u = +-2); it is what SecureML's piecewise function becomes with the correct
slope, and it keeps e in [-1, 1] exactly, which the privacy bound needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.dp import NOISE_TAILS
from mpc.noise import discrete_gaussian
from mpc.party import Party
from mpc.protocols.arithmetic import matmul, mul, truncate
from mpc.protocols.boolean import less_than
from mpc.ring import as_ring, public_factor

U64 = np.uint64


@dataclass(frozen=True)
class Hyper:
    model: str  # "linear" or "logistic"
    iterations: int
    batch_size: int
    learning_rate: float
    residual_bound: float = 1.0  # R: |p - y| is clamped to it


def step_constant(step_scale: float, rows: int, residual_bound: float, frac_bits: int,
                  noise_sigma: float = 0.0) -> tuple[int, int]:
    """(factor, shift) for w -= (factor * g) >> (f + shift), factor / 2^shift = lr / batch:
    g is the exact gradient of `rows` rows (2f fractional bits), each coordinate at most
    rows * R (features in [-1, 1], one rounding each) plus both servers' noise. Raises
    PrecisionError when the constant cannot keep 12 significant bits (a fixed 16-bit scale
    made lr / batch = 0.01 / 1024 56% too large, and anything below 2^-17 zero)."""
    gradient = rows * residual_bound * (1 + 2.0 ** -frac_bits) + NOISE_TAILS * noise_sigma
    return public_factor(step_scale, gradient * 2.0 ** (2 * frac_bits),
                         max_shift=61 - frac_bits)


async def clamp(party: Party, x: np.ndarray, low: float, high: float) -> np.ndarray:
    """min(max(x, low), high) elementwise, for public bounds. 9 rounds, one product."""
    n = len(x)
    lo, hi = party.fixed.encode(low), party.fixed.encode(high)
    below, above = await less_than(party, np.stack([x, party.public(np.full(n, hi))]),
                                   np.stack([party.public(np.full(n, lo)), x]))
    inside = party.public(np.ones(n, U64)) - below - above
    return await mul(party, inside, x) + below * lo + above * hi  # bounds are public


async def sigmoid(party: Party, u: np.ndarray) -> np.ndarray:
    quarter = await truncate(party, u, 2)
    return await clamp(party, quarter + party.public(np.full(len(u), party.fixed.encode(0.5))),
                       0.0, 1.0)


async def sgd_step(party: Party, w, x_batch, y_batch, hyper: Hyper, step_scale: float,
                   valid_batch=None, noise_sigma: float = 0.0):
    """One iteration; returns the new weights."""
    (u,) = (await truncate(party, await matmul(party, x_batch, w[:, None]))).T
    p = await sigmoid(party, u) if hyper.model == "logistic" else u
    error = await clamp(party, p - y_batch, -hyper.residual_bound, hyper.residual_bound)
    if valid_batch is not None:
        error = await mul(party, error, valid_batch)
    gradient = (await matmul(party, x_batch.T, error[:, None]))[:, 0]
    if noise_sigma > 0:  # this server's own sample, on the 2^-2f grid of the exact gradient
        grid = noise_sigma * party.fixed.scale ** 2
        gradient = gradient + discrete_gaussian(party.rng, grid, len(gradient)).view(U64)
    factor, shift = step_constant(step_scale, len(y_batch), hyper.residual_bound,
                                  party.fixed.frac_bits, noise_sigma)
    step = await truncate(party, gradient * as_ring(factor), party.fixed.frac_bits + shift)
    return w - step


async def train(party: Party, x: np.ndarray, y: np.ndarray, hyper: Hyper, batches,
                valid: np.ndarray | None = None, noise_sigma: float = 0.0,
                expected_batch: float | None = None) -> np.ndarray:
    """Weights (d shares) after one step per batch of public row indices."""
    w = np.zeros(x.shape[1], U64)
    scale = hyper.learning_rate / (expected_batch or hyper.batch_size)
    for rows in batches:
        w = await sgd_step(party, w, x[rows], y[rows], hyper, scale,
                           None if valid is None else valid[rows], noise_sigma)
    return w


def sequential_batches(rows: int, hyper: Hyper):
    """Levels 3 and 4: consecutive batches over already shuffled rows, wrapping around."""
    for t in range(hyper.iterations):
        start = (t * hyper.batch_size) % rows
        yield (np.arange(start, start + hyper.batch_size) % rows)


def poisson_batches(seed_prg, rows: int, hyper: Hyper):
    """Level 5: each row independently with probability batch / rows, from public randomness."""
    threshold = U64(int(hyper.batch_size / rows * 2.0 ** 64) if hyper.batch_size < rows
                    else 2**64 - 1)
    for _ in range(hyper.iterations):
        yield np.flatnonzero(seed_prg.words(rows) < threshold)
