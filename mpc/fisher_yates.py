"""Random permutations from a CSPRNG stream by Durstenfeld's shuffle (Fisher-Yates).

The swaps are a sequential loop that numpy cannot vectorise, so numba compiles it (cached on
disk, compiled at the first use in a fresh install). The numpy way, sorting random 64-bit
keys, is several times slower (docs/mpc.md, "Measurements behind design choices"), and a
secure sort needs two permutations per digit pass (one made by the dealer, one by the
permuting server).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from twofold.mpc.ring import U64

MAX_COUNT = 1 << 32  # the exact multiply-high below needs i + 1 < 2^32


@njit(cache=True, nogil=True)
def _swap_down(order, targets):
    for i in range(order.size - 1, 0, -1):
        j = targets[i]
        order[i], order[j] = order[j], order[i]


def shuffled_range(words: np.ndarray) -> np.ndarray:
    """range(n) permuted, for n = len(words) uniform 64-bit words: step i = n - 1, ..., 1 swaps
    position i with j_i = floor(u_i (i + 1) / 2^64) (Lemire's multiply-high, without rejection,
    so that the words consumed do not depend on their values). Each j_i is within (i + 1) / 2^64
    of uniform on [0, i], so the permutation is within n^2 / 2^65 of uniform (3e-8 at a million
    rows, as sorting random 64-bit keys was)."""
    n = words.size
    if n >= MAX_COUNT:
        raise ValueError(f"a permutation of {n} elements is too large")
    bound = np.arange(1, n + 1, dtype=U64)
    low = words & U64(0xFFFFFFFF)
    low *= bound
    low >>= U64(32)
    targets = words >> U64(32)
    targets *= bound
    targets += low  # below 2^64: (2^32 - 1)^2 + 2^32 - 1 < 2^64
    targets >>= U64(32)
    order = np.arange(n, dtype=np.int64)
    _swap_down(order, targets.view(np.int64))
    return order
