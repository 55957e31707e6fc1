"""The CSPRNG behind every share, mask, triple and permutation: AES-128-CTR.

A Prg is keyed by 16 bytes and a 64-bit stream id that fills the upper half of the counter
block, so one key yields 2^64 independent streams of 2^68 bytes each. Keys come from os.urandom;
stream ids are never reused under one key (the dealer hands out a fresh key per session and
numbers correlations). Output is written into preallocated buffers with update_into, which is
about ten times faster than allocating a fresh bytes object per call.
"""

from __future__ import annotations

import os

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_BYTES = 16
_CHUNK = 1 << 22
_ZEROS = memoryview(bytes(_CHUNK))  # sliced without copying (a bytes slice is a copy)
_SLACK = 16  # update_into wants len(data) + block size - 1 bytes of room
SLACK_WORDS = _SLACK // 8
SHUFFLE_FROM = 1 << 14  # elements from which permutations are made by a compiled shuffle


def fresh_key() -> bytes:
    return os.urandom(KEY_BYTES)


def stream_rows(key: bytes, stream_id: int, rows: np.ndarray, row_words: int) -> np.ndarray:
    """Rows `rows` (any order, repeats allowed) of Prg(key, stream_id).words((n, row_words)),
    for an even row_words, without expanding the rows before them: CTR keystream block i is
    AES_key(stream_id * 2^64 + i), so the blocks wanted are encrypted directly (ECB)."""
    if row_words % 2:
        raise ValueError("stream_rows needs rows of whole 16-byte blocks (an even row_words)")
    per_row = row_words // 2
    rows = np.asarray(rows, np.int64)
    counters = np.empty((len(rows) * per_row, 2), dtype=">u8")
    counters[:, 0] = stream_id
    counters[:, 1] = (rows[:, None] * per_row + np.arange(per_row)).ravel()
    keystream = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(counters.tobytes())
    return np.frombuffer(keystream, dtype="<u8").astype(np.uint64).reshape(len(rows), row_words)


class Prg:
    """One AES-128-CTR keystream, consumed front to back."""

    def __init__(self, key: bytes, stream_id: int = 0):
        if len(key) != KEY_BYTES:
            raise ValueError("Prg key must be 16 bytes")
        nonce = int(stream_id).to_bytes(8, "big") + bytes(8)
        self._encryptor = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()

    @classmethod
    def fresh(cls) -> Prg:
        return cls(fresh_key())

    def random_bytes(self, nbytes: int) -> np.ndarray:
        out = np.empty(nbytes + _SLACK, dtype=np.uint8)
        view = out.data
        for start in range(0, nbytes, _CHUNK):
            length = min(_CHUNK, nbytes - start)
            self._encryptor.update_into(_ZEROS[:length], view[start : start + length + _SLACK])
        return out[:nbytes]

    def bytes_into(self, view: memoryview) -> None:
        """Fill all but the last 16 bytes of a writable byte view (at most 4 MiB + 16 long)
        with the next bytes of the stream; the last 16 are room update_into needs."""
        if not _SLACK <= len(view) <= _CHUNK + _SLACK:
            raise ValueError(f"bytes_into fills 0 to {_CHUNK} bytes plus {_SLACK} of room")
        self._encryptor.update_into(_ZEROS[:len(view) - _SLACK], view)

    def words(self, shape) -> np.ndarray:
        """Uniform uint64 array of the given shape."""
        count = int(np.prod(shape, dtype=np.int64))
        return self.random_bytes(8 * count).view(np.uint64).reshape(shape)

    def bits(self, count: int) -> np.ndarray:
        """Uniform 0/1 uint8 array."""
        packed = self.random_bytes((count + 7) // 8)
        return np.unpackbits(packed, count=count, bitorder="little")

    def permutation(self, count: int) -> np.ndarray:
        """A random permutation of range(count) as int64 indices, within count^2 / 2^65 of
        uniform; the dealer and a server derive the same one from the same stream. Large ones
        by a Fisher-Yates shuffle (mpc.fisher_yates, compiled by numba); below SHUFFLE_FROM
        elements by sorting random 64-bit keys, which is as fast there and spares a process
        that never permutes much numba's half-second import."""
        if count < SHUFFLE_FROM:
            keys = self.words(count)
            order = np.argsort(keys)
            ordered = keys[order]
            if count > 1 and np.any(ordered[1:] == ordered[:-1]):
                return np.argsort(keys, kind="stable")  # repeated keys: a determined order
            return order
        from twofold.mpc.fisher_yates import (
            shuffled_range,  # numba: only where permutations are large
        )

        return shuffled_range(self.words(count))
