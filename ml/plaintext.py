"""The same training in plain numpy floats: the reference MPC training is compared against
(same scaling, clamps, sigmoid approximation and batch order), and the model's accuracy."""

from __future__ import annotations

import numpy as np

from twofold.ml.sgd import Hyper
from twofold.mpc.noise import discrete_gaussian
from twofold.mpc.prg import Prg

GRID = 2.0 ** 16


def approximate_sigmoid(u: np.ndarray) -> np.ndarray:
    return np.clip(u / 4 + 0.5, 0.0, 1.0)


def train_plain(x: np.ndarray, y: np.ndarray, hyper: Hyper, batches,
                expected_batch: float | None = None, noise_sigma: float = 0.0,
                noise_prg: Prg | None = None) -> np.ndarray:
    """With noise_sigma, the gradient sum gets N_Z-on-the-2^-16-grid noise of that deviation
    on every step (one draw: the plaintext baseline of a single noise source)."""
    if noise_sigma > 0 and noise_prg is None:
        raise ValueError("noise_sigma needs noise_prg, the noise's randomness")
    w = np.zeros(x.shape[1])
    scale = hyper.learning_rate / (expected_batch or hyper.batch_size)
    for rows in batches:
        xb, yb = x[rows], y[rows]
        u = xb @ w
        p = approximate_sigmoid(u) if hyper.model == "logistic" else u
        error = np.clip(p - yb, -hyper.residual_bound, hyper.residual_bound)
        gradient = xb.T @ error
        if noise_sigma > 0 and noise_prg is not None:
            gradient = gradient + discrete_gaussian(noise_prg, noise_sigma * GRID,
                                                    len(gradient)) / GRID
        w = w - scale * gradient
    return w


def predict(x: np.ndarray, w: np.ndarray, model: str) -> np.ndarray:
    u = x @ w
    return approximate_sigmoid(u) if model == "logistic" else u


def accuracy(x: np.ndarray, y: np.ndarray, w: np.ndarray, model: str) -> float:
    """Share of rows whose prediction, thresholded at 1/2, equals the 0/1 label."""
    return float(np.mean((predict(x, w, model) >= 0.5) == (y >= 0.5)))
