"""Secret-shared shuffle of a table of columns.

Two passes; in pass p server p permutes with a permutation pi_p that only it (and the dealer)
knows, so the composition is unknown to each server. One pass, with permuter P and helper H:
- the dealer gives H masks a, b and gives P pi and delta = pi(a) - b (XOR for boolean columns);
- H sends z = x_H - a to P (uniform, since a is);
- P's new share is pi(x_P + z) + delta = pi(x) - b, H's new share is b.
2 rounds; each server sends 8 bytes per cell once; the dealer sends 8 bytes per cell per pass.
"""

from __future__ import annotations

from typing import TypeVar, cast

import numpy as np
import numpy.typing as npt

from twofold.mpc.party import Party
from twofold.mpc.ring import U64

# A column of shares, additive or XOR words: a list of one layout comes back in that layout
Column = TypeVar("Column", bound=npt.NDArray[np.uint64])


def _combine(table: np.ndarray, other: np.ndarray, kinds: str, subtract: bool) -> np.ndarray:
    """Row by row: XOR for boolean rows, + or - for additive rows."""
    out = np.empty_like(table)
    for row, kind in enumerate(kinds):
        if kind == "x":
            np.bitwise_xor(table[row], other[row], out=out[row])
        elif subtract:
            np.subtract(table[row], other[row], out=out[row])
        else:
            np.add(table[row], other[row], out=out[row])
    return out


async def _shuffle_pass(party: Party, table: np.ndarray, kinds: str, permuter: int):
    masks = await party.corr.permutation_masks(table.shape[1], kinds, permuter)
    if party.id == permuter:
        perm, delta = masks
        (masked,) = await party.link.recv()
        if masked.shape != table.shape:
            raise ValueError(f"shuffle: peer sent {masked.shape}, expected {table.shape}")
        unmasked = _combine(table, masked, kinds, subtract=False)
        return _combine(np.take(unmasked, perm, axis=1), delta, kinds, subtract=False)
    mask_a, mask_b = masks
    await party.link.send(_combine(table, mask_a, kinds, subtract=True))
    return mask_b


async def shuffle(party: Party, columns: list[Column], boolean: list[bool] | None = None
                  ) -> list[Column]:
    """The same secret random permutation applied to every column (all of length n).
    boolean[i] says column i holds XOR shares (default: additive)."""
    if not columns:
        return []
    boolean = boolean or [False] * len(columns)
    kinds = "".join("x" if flag else "a" for flag in boolean)
    table = np.stack([np.asarray(column, U64) for column in columns])
    for permuter in (0, 1):
        table = await _shuffle_pass(party, table, kinds, permuter)
    return cast(list[Column], list(table))
