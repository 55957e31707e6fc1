"""Random 1-out-of-N OTs, for comparisons and equality block by block (mpc.protocols.choices)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from twofold.mpc.correlations.kind import CorrelationError, Kind, count_of
from twofold.mpc.correlations.merging import ELEMENTWISE
from twofold.mpc.ring import U64

CHOICE_WORD_BITS = 64  # a one_of_n sender's entries fill at most one word


def low_bits(count: int) -> np.uint64:
    """The word whose low `count` bits are set (count <= 64)."""
    return U64((1 << count) - 1)


class OneOfN(Kind):
    """Random 1-out-of-N OTs on entries of `width` bits (1 or 2): the sender gets N random
    entries, entry k in bits k * width onwards of a word; the receiver a random index below N
    (uint8) and the sender's entry there (uint8). N is a power of two, N * width <= 64."""

    name = "one_of_n"
    merging = ELEMENTWISE
    examples = ({"shape": [2000], "entries": 64, "sender": 0, "width": 1},
                {"shape": [2000], "entries": 32, "sender": 1, "width": 2},
                {"shape": [70], "entries": 2, "sender": 1, "width": 1},
                {"shape": [0], "entries": 16, "sender": 1, "width": 2})

    class Sender(NamedTuple):
        entries: np.ndarray  # uint64: N random entries per word

    class Receiver(NamedTuple):
        choice: np.ndarray  # uint8, below N (an index)
        entry: np.ndarray  # uint8: the sender's entry at index

    def validate(self, params):
        if len(params["shape"]) != 1:
            raise CorrelationError("one_of_n takes a 1-d shape")
        count_of(params["shape"])
        entries, width = params["entries"], params["width"]
        if (not (isinstance(entries, int) and entries >= 2 and entries & (entries - 1) == 0)
                or width not in (1, 2) or entries * width > CHOICE_WORD_BITS
                or params["sender"] not in (0, 1)):
            raise CorrelationError("one_of_n takes a power of two of at least 2 entries of 1 "
                                   "or 2 bits, 64 bits in all at most, and a sender 0 or 1")

    def receiver(self, params):
        return 1 - params["sender"]

    def own(self, party, prg, params):
        (count,), entries = params["shape"], params["entries"]
        if party == params["sender"]:
            return [prg.words(count) & low_bits(entries * params["width"])]
        return [(prg.words(count) % U64(entries)).astype(np.uint8)]  # a power of two: uniform

    def correction(self, own0, own1, params):
        (bits,), (index,) = (own0, own1) if params["sender"] == 0 else (own1, own0)
        width = params["width"]
        return [((bits >> (index.astype(U64) * U64(width))) & low_bits(width)).astype(np.uint8)]

    def assemble(self, party, own, correction, params):
        if party == params["sender"]:
            return self.Sender(*own)
        return self.Receiver(*own, *correction)

    async def by_ot(self, ot, params):
        value = await ot.one_of_n(params["shape"][0], params["entries"], params["sender"],
                                  params["width"])
        return self.Sender(*value) if ot.party == params["sender"] else self.Receiver(*value)

    def check(self, params, part0, part1, mask=None):
        entries, width, (count,) = params["entries"], params["width"], params["shape"]
        ((bits,), (index, entry)) = (part0, part1) if params["sender"] == 0 else (part1, part0)
        assert bits.dtype == U64 and bits.shape == index.shape == entry.shape == (count,)
        assert np.all(bits <= low_bits(entries * width)) and np.all(index < entries)
        shift = index.astype(U64) * U64(width)
        assert entry.dtype == np.uint8
        assert np.array_equal(entry, ((bits >> shift) & low_bits(width)).astype(np.uint8))
        if count >= 2000:  # random: every index drawn, bits balanced
            assert len(np.unique(index)) == entries
            ones = np.unpackbits(bits.view(np.uint8)).mean()
            assert abs(ones - entries * width / 128) < 0.05
