"""Running a join plan on shares: binary joins from the sinks up, then Theta."""

from __future__ import annotations

from typing import cast

import numpy as np

from twofold.mpc.party import Party
from twofold.mpc.protocols.arithmetic import mul
from twofold.mpc.protocols.boolean import equal
from twofold.mpc.shares import Additive
from twofold.sorting_join.binary import join_binary
from twofold.sorting_join.plan import JoinPlan
from twofold.sorting_join.table import SharedTable


async def product(party: Party, factors: list[Additive]) -> Additive:
    """The elementwise product of several 0/1 shares, in a tree of multiplications."""
    while len(factors) > 1:
        pairs = len(factors) // 2
        products = await mul(party, Additive(np.stack(factors[:pairs])),
                             Additive(np.stack(factors[pairs:2 * pairs])))
        factors = cast(list[Additive], list(products)) + factors[2 * pairs:]
    return factors[0]


async def run_join(party: Party, plan: JoinPlan, tables: dict[str, SharedTable],
                   needed: set[str]) -> SharedTable:
    """The root table with every needed column of the joined tables, valid = the join's
    indicator including Theta. Stages: sort, propagate, compact (all steps), theta."""
    current = dict(tables)
    needed = set(needed) | {column for pair in plan.theta for column in pair}
    for step in plan.steps:
        child = current[step.child]
        carry = [c for c in child.columns if c in needed] if step.carries_columns else []
        current[step.parent] = await join_binary(
            party, current[step.parent], step.parent_key, child, step.child_key, carry,
            key_bits=step.key_bits)
    root = current[plan.root]
    if plan.theta:
        with party.stage("theta"):
            left = Additive(np.stack([root.column(a) for a, _ in plan.theta]))
            right = Additive(np.stack([root.column(b) for _, b in plan.theta]))
            checks = cast(list[Additive], list(await equal(party, left, right)))
            root = SharedTable(root.columns, await product(party, [root.valid, *checks]))
    return root
