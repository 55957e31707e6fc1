"""Benchmark program for the binary join, run by both servers on random secret inputs.

Server 0 makes the plaintext inputs (distinct random primary keys below 2^(key_bits - 1), as a
key declared key_bits - 1 bits wide; foreign keys drawn from them, one in eight dangling, above
them) and secret-shares them, untimed; then the join, sorting on key_bits bits, runs `repeat`
times, and the costs of each run are reported per stage (sort, propagate, compact).
"""

from __future__ import annotations

import numpy as np

from twofold.mpc.party import Party
from twofold.mpc.protocols.arithmetic import share_input
from twofold.mpc.ring import U64
from twofold.sorting_join.binary import join_binary
from twofold.sorting_join.table import SharedTable


def _plain_inputs(party: Party, left_rows: int, right_rows: int, key_bits: int):
    prg, domain = party.rng, key_bits - 1
    if right_rows > 1 << domain:
        raise ValueError(f"{right_rows} distinct keys do not fit in {domain} bits")
    keys = np.unique(prg.words(2 * right_rows + 64) >> U64(64 - domain))
    while len(keys) < right_rows:  # a small domain: draw until there are enough
        keys = np.unique(np.concatenate([keys, prg.words(right_rows) >> U64(64 - domain)]))
    keys = keys[prg.permutation(len(keys))][:right_rows]
    picks = (prg.words(left_rows) % U64(right_rows)).astype(np.int64)
    foreign = keys[picks]
    dangling = (prg.words(left_rows) & U64(7)) == 0
    foreign[dangling] = foreign[dangling] + U64(1 << domain)  # outside the key set
    return foreign, keys, prg.words(right_rows) >> U64(20)


async def run_join_bench(party: Party, left_rows: int, right_rows: int, key_bits: int = 63,
                         repeat: int = 1):
    plain = (_plain_inputs(party, left_rows, right_rows, key_bits) if party.id == 0
             else (None,) * 3)
    with party.stage("inputs"):
        foreign = await share_input(party, 0, plain[0], left_rows)
        keys = await share_input(party, 0, plain[1], right_rows)
        payload = await share_input(party, 0, plain[2], right_rows)
    left = SharedTable({"r.fk": foreign}, party.public(np.ones(left_rows, U64)))
    right = SharedTable({"s.pk": keys, "s.payload": payload},
                        party.public(np.ones(right_rows, U64)))
    runs = []
    for _ in range(repeat):
        party.accounting.stages = {}
        await join_binary(party, left, "r.fk", right, "s.pk", ["s.payload"], key_bits)
        runs.append({name: cost.as_dict() for name, cost in party.accounting.stages.items()})
    return runs
