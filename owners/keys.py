"""How every owner turns key values into ring elements, identically.

- A single integer key in [0, 2^62) is encoded exactly, as itself.
- Any other key (a negative or larger integer, a string, a composite key of several columns) is
  hashed: BLAKE2b-64 over a type-tagged, length-prefixed encoding, with a fixed personalization,
  keeping 62 bits and setting bit 62. Hashed keys lie in [2^62, 2^63), so they never collide
  with exactly encoded ones.
Two distinct hashed keys collide with probability 2^-62 each; among m distinct hashed keys the
chance of any collision is below m^2 / 2^63 (1e-5 at ten million keys). Owners check their own
keys for collisions before uploading; padding rows get fresh keys in the hashed range.
All keys are below 2^63, so sorting by a key needs at most 63 bits.
"""

from __future__ import annotations

import hashlib

import numpy as np

EXACT_LIMIT = 1 << 62
HASHED_TAG = 1 << 62
KEY_BITS = 63
_PERSON = b"twofold-key-v1"


def _canonical(value) -> bytes:
    if isinstance(value, str):
        data = b"s" + value.encode("utf-8")
    else:
        data = b"i" + str(int(value)).encode("ascii")
    return len(data).to_bytes(4, "big") + data


def hash_key(parts: tuple) -> int:
    digest = hashlib.blake2b(b"".join(_canonical(p) for p in parts), digest_size=8,
                             person=_PERSON).digest()
    return (int.from_bytes(digest, "big") >> 2) | HASHED_TAG


def encode_keys(columns: list[np.ndarray]) -> np.ndarray:
    """One uint64 code per row for the key made of the given columns (int64 or str arrays)."""
    if len(columns) == 1 and columns[0].dtype.kind in "iu":
        values = columns[0].astype(np.int64)
        exact = (values >= 0) & (values < EXACT_LIMIT)
        codes = values.astype(np.uint64)
        for row in np.flatnonzero(~exact):
            codes[row] = hash_key((int(values[row]),))
        return codes
    rows = zip(*[column.tolist() for column in columns], strict=True)
    return np.fromiter((hash_key(tuple(row)) for row in rows), dtype=np.uint64,
                       count=len(columns[0]))
