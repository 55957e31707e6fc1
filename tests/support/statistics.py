"""Tests that shares look uniform: chi-square statistics of one byte of 64-bit words."""

import numpy as np

from twofold.mpc.ring import U64


def uniformity_statistic(words: np.ndarray, shift: int) -> float:
    counts = np.bincount(((words >> U64(shift)) & U64(0xFF)).astype(np.int64), minlength=256)
    expected = len(words) / 256
    return float(((counts - expected) ** 2 / expected).sum())


def two_sample_statistic(a: np.ndarray, b: np.ndarray, shift: int) -> float:
    ca = np.bincount(((a >> U64(shift)) & U64(0xFF)).astype(np.int64), minlength=256)
    cb = np.bincount(((b >> U64(shift)) & U64(0xFF)).astype(np.int64), minlength=256)
    both = ca + cb
    return float((((ca - cb) ** 2) / np.maximum(both, 1)).sum())


# chi-square with 255 degrees of freedom: mean 255, sd 22.6; 400 is beyond p = 1e-6
CHI2_LIMIT = 400
