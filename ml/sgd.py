"""SecureML-style minibatch SGD on shares: linear and logistic regression.

Once per training, as SecureML does, the rows X (n x d) are masked by a random shared matrix
A (a row mask from the correlation source) and E = X - A is opened: uniform, since A is used
for nothing else. A batch's products X_b w and X_b^T e then open only w and e, masked afresh
(`masked products`: b, A_b b, b', A_b^T b' for the batch's rows of A).

Per iteration, for the batch's public row indices b:
    u = X_b w                         opens w - b (d words)
    v = u / 4 + 1/2 (logistic) or u   one truncation (by f + 2, or f)
    e = clamp(v - y_b, lo_b, hi_b)    two comparisons and one bit-times-value round (5 rounds
                                      with a dealer's fan-in-4 ANDs, 8 with OT)
    g = X_b^T e                       opens e - b' (batch words); exact (2f fractional bits)
    [+ each server's own discrete Gaussian noise, on the 2^-f grid, under DP]
    w = w - (lr / batch) g            one truncation; lr / batch gets every bit the gradient
                                      leaves (step_constant), refused if fewer than 12
9 rounds with a dealer, 12 with OT. The per-row bounds are computed once: lo = -R and hi = R
(linear), lo = max(-y, -R) and hi = min(1 - y, R) (logistic), both times the row's indicator,
so that dummy rows give e = 0. For logistic regression this is the clamped residual of the
clamped model: clamp(v, 0, 1) - y = clamp(v - y, -y, 1 - y), and two clamps whose intervals
meet ([-y, 1 - y] and [-R, R] share 0) make one clamp to their intersection.

The logistic approximation s(u) = clamp(u / 4 + 1/2, 0, 1) is the tangent of the sigmoid at 0
clamped to [0, 1]: its largest error is 0.119 (at u = +-2); it is what SecureML's piecewise
function becomes with the correct slope, and it keeps e in [-1, 1] exactly, which the privacy
bound needs.

Correlations are made ahead: batches are public and known up front, shorter ones (Poisson
sampling) are padded to the longest with a dummy row, so every iteration asks for the same
correlations but for the batch's rows; the first iteration's requests are recorded and every
later iteration's announced at once (CorrelationSource.prefetch, within its memory budget).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twofold.ml.dp import NOISE_TAILS
from twofold.mpc.correlations.row_masks import MaskedProducts
from twofold.mpc.noise import discrete_gaussian
from twofold.mpc.party import Party
from twofold.mpc.protocols.arithmetic import mul, reveal, truncate
from twofold.mpc.protocols.boolean import bits_times, clamp, less_than_bits
from twofold.mpc.ring import U64, as_ring, public_factor
from twofold.mpc.shares import Additive


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


def _constant(party: Party, value: float, n: int) -> Additive:
    return party.public(np.full(n, party.fixed.encode(value)))


async def sigmoid(party: Party, u: Additive) -> Additive:
    """s(u) = clamp(u / 4 + 1/2, 0, 1) for u with f fractional bits. 1 round and clamp's."""
    n = len(u)
    quarter = await truncate(party, u, 2)
    return await clamp(party, Additive(quarter + _constant(party, 0.5, n)),
                       _constant(party, 0.0, n), _constant(party, 1.0, n))


async def residual_bounds(party: Party, y: Additive, valid: Additive,
                          hyper: Hyper) -> tuple[Additive, Additive]:
    """Shares of each row's bounds (lo, hi) on the residual v - y (module docstring); both 0
    where valid is 0. Linear: local; logistic: a comparison and 2 rounds, once per training."""
    n = len(y)
    if hyper.model == "linear":
        high = valid * party.fixed.encode(hyper.residual_bound)
        return Additive(-high), Additive(high)
    limit = _constant(party, hyper.residual_bound, n)
    below_one = Additive(np.stack([y, _constant(party, 1.0, n) - y]))  # y and 1 - y
    over = await less_than_bits(party, Additive(np.stack([limit, limit])), below_one)
    least = below_one + await bits_times(party, over, Additive(limit - below_one))  # min(., R)
    low, high = await mul(party, valid, Additive(least))
    return Additive(-low), Additive(high)


async def _masked_product(party: Party, open_part: np.ndarray, mask_part: Additive,
                          vector: Additive, vector_mask: Additive,
                          product: Additive) -> Additive:
    """(open_part + mask_part) @ vector, where open_part is public, mask_part is shared and
    product = mask_part @ vector_mask: only vector - vector_mask is opened. 1 round."""
    opened = await reveal(party, Additive(vector - vector_mask))
    result = np.matmul(open_part, vector_mask) + np.matmul(mask_part, opened) + product
    if party.id == 0:
        result += np.matmul(open_part, opened)
    return Additive(result)


@dataclass(frozen=True)
class _Rows:
    """The training rows as every iteration uses them: X - A (public), this server's share of
    A, the labels and the residual bounds, with the dummy row last."""

    opened: np.ndarray
    mask: Additive
    labels: Additive
    low: Additive
    high: Additive


async def _iteration(party: Party, data: _Rows, rows: np.ndarray, w: Additive,
                     hyper: Hyper, step: tuple[int, int], noise_sigma: float) -> Additive:
    """One step on the batch `rows` (padded); returns the new weights. 9 or 12 rounds."""
    f = party.fixed.frac_bits
    forward, backward, product, product_back = await party.corr.masked_products(
        rows.tolist(), len(w))
    opened, mask = data.opened[rows], Additive(data.mask[rows])
    u = await _masked_product(party, opened, mask, w, forward, product)
    if hyper.model == "logistic":
        v = await truncate(party, u, f + 2) + _constant(party, 0.5, len(rows))
    else:
        v = await truncate(party, u, f)
    error = await clamp(party, Additive(v - data.labels[rows]), Additive(data.low[rows]),
                        Additive(data.high[rows]))
    gradient = await _masked_product(party, opened.T, Additive(mask.T), error, backward,
                                     product_back)
    if noise_sigma > 0:  # this server's own sample, on the 2^-2f grid of the exact gradient
        grid = noise_sigma * party.fixed.scale ** 2
        gradient = Additive(
            gradient + discrete_gaussian(party.rng, grid, len(gradient)).view(U64))
    factor, shift = step
    return Additive(w - await truncate(party, Additive(gradient * as_ring(factor)), f + shift))


def _later_plan(first: list, batches: list[np.ndarray]) -> list:
    """The requests of every later iteration: the first iteration's, with the batch's rows in
    its masked products (no other request depends on which rows a batch holds)."""
    return [(kind, {**params, "rows": rows.tolist()} if kind == MaskedProducts.name else params)
            for rows in batches for kind, params in first]


async def train(party: Party, x: Additive, y: Additive, hyper: Hyper, batches,
                valid: Additive | None = None, noise_sigma: float = 0.0,
                expected_batch: float | None = None) -> Additive:
    """Weights (d shares) after one step per batch of public row indices."""
    n, d = x.shape
    w = Additive(np.zeros(d, U64))
    batches = [np.asarray(rows, np.int64) for rows in batches]
    if not batches:
        return w
    width = max(1, max(len(rows) for rows in batches))
    batches = [np.concatenate([rows, np.full(width - len(rows), n)]) for rows in batches]
    valid = party.public(np.ones(n, U64)) if valid is None else valid
    zero = party.public(np.zeros(1, U64))  # the dummy row n: zero features, label and bounds
    x, y = Additive(np.vstack([x, np.zeros((1, d), U64)])), Additive(np.concatenate([y, zero]))
    low, high = await residual_bounds(party, y, Additive(np.concatenate([valid, zero])), hyper)
    mask = await party.corr.row_mask(n + 1, d)
    data = _Rows(await reveal(party, Additive(x - mask)), mask, y, low, high)
    scale = hyper.learning_rate / (expected_batch or hyper.batch_size)
    step = step_constant(scale, width, hyper.residual_bound, party.fixed.frac_bits, noise_sigma)
    with party.corr.recording() as first:
        w = await _iteration(party, data, batches[0], w, hyper, step, noise_sigma)
    party.corr.prefetch(_later_plan(first, batches[1:]))
    for rows in batches[1:]:
        w = await _iteration(party, data, rows, w, hyper, step, noise_sigma)
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
