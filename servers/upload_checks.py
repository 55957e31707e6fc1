"""What the servers check on an upload's shares before it becomes live, opening one bit.

An owner's client checks its file against the schema (owners/read.py), but a modified client
can share any word at all. So before a version becomes live both servers check, for every
row, what an honest client stores:
- the indicator is 0 or 1, and each null flag is 0 or 1, and 0 in padding rows;
- a numeric or categorical value lies within its declared codes (servers/ranges.py's
  declared_bounds) where the row is real and the cell present, and is 0 elsewhere (padding
  rows, missing cells);
- a key column (a part, a foreign key, a combined key) lies below 2^bits where it declares
  bits, below 2^63 otherwise (what sorts assume), and is 0 in padding rows; the primary key
  lies in [0, 2^bits) in real rows and [2^bits, 2^(bits + 1)) in padding rows, or below 2^63;
- the primary key strictly increases from row to row: owners upload rows sorted by it
  (owners/prepare.py), so this one comparison per row proves it unique, without a sort.

Every check is a range check u in [0, w) with 1 <= w <= 2^63, where u and w are linear in the
shares (a gate bit g, the indicator or the indicator minus a null flag, selects the real
range or [0, 0]): u in [0, w) iff msb(u) = 0 and msb(u - w) = 1, both from one msb_bits call
over every column at once (a gate that is not a bit fails its own check, so the others may
assume it is). The primary key's order is msb(k_j - k_(j+1)) = 1, keys below 2^63 once their
own checks pass. All these bits are ANDed on shares into one, and only that bit is opened.

Cost, per row of a table with c value columns: about 2c + 2 msbs (17 for `bench upload`'s
events table, 18 with the key order), each 63 ANDed bits and 16 bytes with a dealer, in chunks
of CHUNK values (63 rounds each), then an AND tree over the bits (log2 of the bits / 64 + 6
rounds), and one opened bit (docs/owners.md has the measured times).
"""

from __future__ import annotations

import hashlib

import numpy as np

from twofold.mpc.errors import ProtocolMismatch
from twofold.mpc.party import Party
from twofold.mpc.protocols.boolean import ALL_ONES, and_words, msb_bits
from twofold.mpc.ring import U64
from twofold.mpc.shares import Additive, XorBits, XorWords
from twofold.owners.keys import KEY_BITS
from twofold.owners.schema import INDICATOR, NULL_PREFIX, Schema, Table, null_flag
from twofold.servers.ranges import declared_bounds
from twofold.servers.storage import UploadRecord

CHUNK = 1 << 22  # values per msb_bits call: bounds each server's memory, 63 rounds each


def refusal(table: str) -> str:
    """The one line an owner reads when the servers refuse an upload's values."""
    return f"the servers found values outside the schema of table {table}; nothing was stored"


class _Ranges:
    """The range checks of one table, as (u, w) pairs: u in [0, w), w None for 2^63."""

    def __init__(self, party: Party, columns: dict[str, Additive]):
        self.party = party
        self.rows = len(columns[INDICATOR])
        self.checks: list[tuple[Additive, Additive | None]] = []

    def constant(self, value: int) -> Additive:
        return self.party.public(np.full(self.rows, value % (1 << 64), U64))

    def gated(self, value: Additive, gate: Additive, low: int, high: int) -> None:
        """value in [low, high] where gate is 1, value 0 where gate is 0 (low <= high,
        high - low < 2^63)."""
        shift = Additive(gate * U64(low % (1 << 64)))
        width = Additive(gate * U64(high - low) + self.constant(1))
        self.checks.append((Additive(value - shift), width))

    def below_top(self, value: Additive) -> None:
        """value in [0, 2^63): msb(value) = 0 alone."""
        self.checks.append((value, None))


def _key_bits(table: Table, name: str) -> int:
    """The bits below which a key column's real values lie: its declared domain, else 63
    (exact integer keys, hashed and combined keys: owners/keys.py)."""
    column = table.column(name) if name in table.column_names else None
    return column.bits if column is not None and column.bits is not None else KEY_BITS


def _ranges(party: Party, schema: Schema, table: Table, columns: dict[str, Additive]) -> _Ranges:
    ranges = _Ranges(party, columns)
    indicator = columns[INDICATOR]
    one = ranges.constant(1)
    ranges.gated(indicator, one, 0, 1)
    primary = table.key_column(table.primary_key)
    for name in table.stored_columns:
        values = columns[name]
        if name == INDICATOR:
            continue
        if name.startswith(NULL_PREFIX):
            ranges.gated(values, indicator, 0, 1)  # a bit, and 0 in padding rows
        elif name == primary:
            bits = _key_bits(table, name)
            if bits == KEY_BITS:
                ranges.below_top(values)  # real and padding keys alike
            else:  # [0, 2^bits) in real rows, [2^bits, 2^(bits + 1)) in padding rows
                padding = Additive(one - indicator)
                ranges.checks.append((Additive(values - padding * U64(1 << bits)),
                                      ranges.constant(1 << bits)))
        elif name in table.column_names and table.column(name).type != "key":
            present = indicator  # a missing cell holds 0, as a padding row's
            if table.column(name).nullable:
                present = Additive(indicator - columns[null_flag(name)])
            ranges.gated(values, present, *declared_bounds(schema, table, name))
        else:  # a key part, a foreign key, a combined key: 0 in padding rows
            ranges.gated(values, indicator, 0, (1 << _key_bits(table, name)) - 1)
    return ranges


def _must_be_set(party: Party, schema: Schema, table: Table, columns: dict[str, Additive]
                 ) -> tuple[Additive, int]:
    """The values whose msbs must all be 0 (the first `clear` of them) or all be 1 (the rest),
    for every check of the table, concatenated."""
    ranges = _ranges(party, schema, table, columns)
    lows = [u for u, _ in ranges.checks]
    highs = [Additive(u - w) for u, w in ranges.checks if w is not None]
    key = columns[table.key_column(table.primary_key)]
    increasing = [Additive(key[:-1] - key[1:])]  # k_j < k_(j+1): both below 2^63, checked
    clear = sum(len(u) for u in lows)
    return Additive(np.concatenate(lows + highs + increasing)), clear


async def all_set(party: Party, bits: XorBits) -> XorBits:
    """XOR shares of the AND of every bit (one bit, shape (1,)): the bits packed 64 to a word,
    an AND tree over the words (log2 of the words rounds), then over a word's 64 bits (6
    rounds). 2 bits sent per bit ANDed."""
    filler = np.full(-len(bits) % 64 or 64 * (len(bits) == 0), party.id == 0, np.uint8)
    words = np.packbits(np.concatenate([bits, filler]), bitorder="little").view(U64)
    while len(words) > 1:
        if len(words) % 2:
            words = np.append(words, ALL_ONES if party.id == 0 else U64(0))
        half = len(words) // 2
        words = await and_words(party, XorWords(words[:half]), XorWords(words[half:]))
    width = 64
    while width > 1:
        width //= 2
        low = words & U64((1 << width) - 1)
        words = await and_words(party, XorWords(low), XorWords(words >> U64(width)))
    return XorBits((words & U64(1)).astype(np.uint8))


async def open_bit(party: Party, bit: XorBits) -> bool:
    """The one value the check opens: a single bit, one byte each way."""
    (other,) = await party.link.exchange(bit)
    return bool((bit ^ other)[0])


async def agree_on_upload(party: Party, record: UploadRecord) -> None:
    """Both servers check the same upload (its identity and content digest)."""
    text = f"{record.owner}/{record.upload_id}/{record.digest}/{record.rows}".encode()
    mine = np.frombuffer(hashlib.sha256(text).digest(), dtype=U64).copy()
    (theirs,) = await party.link.exchange(mine)
    if not np.array_equal(mine, theirs):
        raise ProtocolMismatch("the servers were asked to check different uploads")


async def upload_is_valid(party: Party, schema: Schema, table: Table,
                          columns: dict[str, Additive]) -> bool:
    """Whether every row of an upload is what an honest client stores (the module's
    docstring); both servers learn this one bit and nothing else. Stage "check"."""
    with party.stage("check"):
        values, clear = _must_be_set(party, schema, table, columns)
        msbs = []
        for start in range(0, len(values), CHUNK):
            msbs.append(await msb_bits(party, Additive(values[start:start + CHUNK])))
        bits = np.concatenate(msbs) if msbs else np.zeros(0, np.uint8)
        if party.id == 0:
            bits[:clear] ^= np.uint8(1)  # msb 0 required there: its negation must be set
        return await open_bit(party, await all_set(party, XorBits(bits)))
