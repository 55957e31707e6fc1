"""Splitting plaintext into two additive shares and putting shares back together.

Used outside the servers: by data owners before upload and by recipients after a reveal.
"""

from __future__ import annotations

import numpy as np

from twofold.mpc.prg import Prg
from twofold.mpc.ring import as_ring


def split(values, prg: Prg | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Additive shares (share0, share1) of ring values; the mask comes from a CSPRNG."""
    ring = as_ring(values)
    mask = (prg or Prg.fresh()).words(ring.shape)
    return ring - mask, mask


def reconstruct(share0, share1) -> np.ndarray:
    return np.asarray(share0, np.uint64) + np.asarray(share1, np.uint64)
