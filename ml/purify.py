"""Join-result purification (section 6.1 of the seed paper): training never sees a dummy row.

- compact: a stable oblivious sort by (1 - valid) moves the real rows to the front.
- level 3: compact, then open |J| = sum(valid): training uses the first |J| rows.
- level 4: shuffle, pad with dummy rows to M = 2^ceil(log2 N) and compact; run the duplication
  network (level i, shift M / 2^i, fills dummy row j from row j - shift) for
  floor(log2(M / |J|)) levels, the number of levels chosen obliviously (level i runs iff
  |J| * 2^i <= M, a comparison on shares); compact again: the first 2^K |J| rows now repeat
  the real rows in order, 2^K > M / (2 |J|) times; the half-copy network fills each dummy row
  j > M/2 from row j - M/2, a contiguous window of that periodic run; keep the first N rows and
  shuffle. Every real row then appears floor(N/|J|) or floor(N/|J|) + 1 times, and |J| is never
  opened. The first shuffle decides which rows get the extra copy: without it they would be a
  block of the input order, and a table sorted by its label (or by anything the label follows)
  would be reweighted towards one class (measured in docs/ml.md). (The seed paper runs the
  network on N rows, which balances the copies only when N is a power of two: with N = 100
  and |J| = 33 its shift of 32 overlaps the real block.)
Each network level is two rounds: a product of 0/1 flags, then one row-broadcast multiplexer
over every column.
"""

from __future__ import annotations

from typing import cast

import numpy as np

from twofold.mpc.party import Party
from twofold.mpc.protocols.arithmetic import mul, reveal
from twofold.mpc.protocols.boolean import flag_rows, less_than
from twofold.mpc.protocols.shuffle import shuffle
from twofold.mpc.protocols.sort import SortKey, sort
from twofold.mpc.ring import U64
from twofold.mpc.shares import Additive


async def compact(party: Party, valid: Additive, columns: list[Additive]
                  ) -> tuple[Additive, list[Additive]]:
    """Real rows first, in their order; returns (valid, columns)."""
    dummy = Additive(party.public(np.ones(len(valid), U64)) - valid)
    moved = await sort(party, [valid, *columns], [SortKey(dummy, bits=1, signed=False)])
    return moved[0], moved[1:]


async def _copy_into_dummies(party: Party, valid: Additive, columns: list[Additive],
                             shift: int, active: Additive | None = None
                             ) -> tuple[Additive, list[Additive]]:
    """Row j >= shift, if dummy (and if `active`), becomes a copy of row j - shift."""
    n = len(valid)
    table = np.stack([valid, *columns])
    target, source = table[:, shift:], table[:, :n - shift]
    take = Additive(party.public(np.ones(n - shift, U64)) - valid[shift:])
    if active is not None:
        take = await mul(party, take, Additive(np.broadcast_to(active, take.shape)))
    moved = table.copy()
    moved[:, shift:] = target + await flag_rows(party, take, Additive(source - target))
    return Additive(moved[0]), cast(list[Additive], list(moved[1:]))


async def purify(party: Party, valid: Additive, columns: list[Additive]) -> list[Additive]:
    """Level 4: N rows, all real (given |J| >= 1), each real row floor(N/|J|) or
    floor(N/|J|) + 1 times, in a secret random order."""
    n = len(valid)
    if n < 2:
        return columns
    valid, *columns = await shuffle(party, [valid, *columns])
    levels = (n - 1).bit_length()
    size = 1 << levels
    pad = np.zeros(size - n, U64)
    valid, columns = await compact(party, Additive(np.concatenate([valid, pad])),
                                   [Additive(np.concatenate([c, pad])) for c in columns])
    count = valid.sum(dtype=U64, keepdims=True)
    bounds = party.public(np.array([size >> i for i in range(1, levels + 1)], U64))
    # level i runs iff |J| <= M / 2^i, i.e. not (M / 2^i < |J|)
    active = party.public(np.ones(levels, U64)) - await less_than(
        party, bounds, Additive(np.broadcast_to(count, (levels,))))
    for i in range(1, levels + 1):
        valid, columns = await _copy_into_dummies(party, valid, columns, size >> i,
                                                  Additive(active[i - 1]))
    valid, columns = await compact(party, valid, columns)
    valid, columns = await _copy_into_dummies(party, valid, columns, size // 2)
    return await shuffle(party, [Additive(column[:n]) for column in columns])


async def compact_and_count(party: Party, valid: Additive, columns: list[Additive]
                            ) -> tuple[int, list[Additive]]:
    """Level 3: real rows first, and |J| opened to both servers."""
    valid, columns = await compact(party, valid, columns)
    size = int((await reveal(party, Additive(valid.sum(dtype=U64, keepdims=True))))[0])
    return size, columns
