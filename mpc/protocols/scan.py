"""Segmented prefix scans in ceil(log2 n) rounds (Hillis-Steele), never a loop over rows.

`heads` are additive 0/1 shares marking the first row of each segment.
- "copy": every row gets the values of the nearest head at or above it (the join's propagate
  step); rows above the first head keep the values of row 0;
- "sum": every row gets the sum of the values from the nearest head at or above it;
- "min" / "max": every row gets the least / greatest signed value from the nearest head at or
  above it (values must differ by less than 2^63).
Per level one row-broadcast multiplication: 8 * (2 + columns) bytes per row; "min" and "max" add a
comparison and a multiplexer per level (about 80 bytes and 9 rounds).
"""

from __future__ import annotations

import numpy as np

from mpc.party import Party
from mpc.protocols.arithmetic import mul, mul_rows
from mpc.protocols.boolean import less_than

U64 = np.uint64


async def segmented_scan(party: Party, heads: np.ndarray, values: list[np.ndarray],
                         op: str = "copy") -> list[np.ndarray]:
    if op not in ("copy", "sum", "min", "max"):
        raise ValueError(f"unknown scan {op!r}")
    flags = np.asarray(heads, U64).copy()
    table = (np.stack([np.asarray(v, U64) for v in values]) if values
             else np.zeros((0, len(flags)), U64))
    n = len(flags)
    step = 1
    while step < n:
        f_hi, f_lo = flags[step:], flags[:-step]
        lower = table[:, :-step]
        if op in ("min", "max"):  # lower becomes min(lower, upper): then "copy" semantics
            upper = table[:, step:]
            first, second = (lower, upper) if op == "min" else (upper, lower)
            keep_lower = await less_than(party, first, second)  # lower wins the comparison
            lower = upper + await mul(party, keep_lower, lower - upper)
        operand = lower if op == "sum" else table[:, step:] - lower
        products = await mul_rows(party, f_hi, np.vstack([f_lo[None, :], operand]))
        new_table = table.copy()
        if op != "sum":  # f_hi ? v_hi : v_lo
            new_table[:, step:] = lower + products[1:]
        else:  # v_hi + (1 - f_hi) v_lo
            new_table[:, step:] = table[:, step:] + lower - products[1:]
        flags = flags.copy()
        flags[step:] = f_hi + f_lo - products[0]  # f_hi or f_lo
        table = new_table
        step *= 2
    return list(table)
