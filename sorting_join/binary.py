"""The sorting-based binary foreign-key join on shares (section 5.5 of the seed paper).

R join S on R.fk = S.pk, S.pk unique among S's real rows. The result has exactly |R| rows, in
R's order: R's columns, the carried columns of S, and valid = R.valid * S.valid * [match].

1. Extend: one table of |R| + |S| rows holding the key, an order bit (0 for S rows, 1 for R
   rows), S's carried columns and S's indicator (zero on R rows) and each row's origin.
2. Sort by (key, order bit): every S row now heads the R rows with its key. R's own columns
   never move.
3. Propagate: a segmented copy from each S row down to the rows below it, in O(log n) rounds;
   a row matches if its key equals the copied key, and keeps the copied S indicator if so.
4. Compact: every row goes back to its origin (one shuffle and opening), and the first |R|
   rows are R's, in R's order.
Nothing is opened but uniform values and shuffled permutations (see mpc/protocols/sort.py),
so neither server learns which rows match, how often, or how many.
"""

from __future__ import annotations

import numpy as np

from twofold.mpc.party import Party
from twofold.mpc.protocols.arithmetic import mul
from twofold.mpc.protocols.boolean import equal
from twofold.mpc.protocols.scan import segmented_scan
from twofold.mpc.protocols.sort import SortKey, apply_permutation, sort
from twofold.mpc.ring import U64
from twofold.mpc.shares import Additive
from twofold.owners.keys import KEY_BITS
from twofold.sorting_join.table import SharedTable


async def join_binary(party: Party, left: SharedTable, left_key: str, right: SharedTable,
                      right_key: str, carry: list[str], key_bits: int = KEY_BITS) -> SharedTable:
    """left join right on left[left_key] = right[right_key] (a primary key of right), both
    keys below 2^key_bits. Costs go to the stages "sort", "propagate" and "compact"."""
    n_left, n_right = left.rows, right.rows
    if n_left == 0:
        return SharedTable({**left.columns, **{c: Additive(np.zeros(0, U64)) for c in carry}},
                           left.valid)
    total = n_left + n_right
    with party.stage("sort"):
        pad = np.zeros(n_left, U64)
        key = Additive(np.concatenate([left.column(left_key), right.column(right_key)]))
        order = party.public(np.concatenate([np.ones(n_left, U64), np.zeros(n_right, U64)]))
        payload = [Additive(np.concatenate([pad, right.column(name)])) for name in carry]
        right_valid = Additive(np.concatenate([pad, right.valid]))
        origin = party.public(np.arange(total, dtype=U64))
        key, order, right_valid, origin, *payload = await sort(
            party, [key, order, right_valid, origin, *payload],
            [SortKey(key, bits=key_bits, signed=False), SortKey(order, bits=1, signed=False)])
    with party.stage("propagate"):
        heads = Additive(party.public(np.ones(total, U64)) - order)
        head_key, head_valid, *payload = await segmented_scan(
            party, heads, [key, right_valid, *payload], "copy")
        matched = await mul(party, await equal(party, key, head_key), head_valid)
    with party.stage("compact"):
        matched, *payload = await apply_permutation(party, origin, [matched, *payload])
        valid = await mul(party, left.valid, Additive(matched[:n_left]))
    columns = {**left.columns,
               **{name: Additive(values[:n_left])
                  for name, values in zip(carry, payload, strict=True)}}
    return SharedTable(columns, valid)
