"""Message framing: a msgpack header followed by raw array frames. Nothing is pickled.

A message is [header, frame_1, ..., frame_k]. The header is a msgpack map whose "arrays" entry
lists [dtype, shape] for each frame. Received dtypes must be on the allowlist and every frame
must have exactly the announced size, or the message is rejected.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

ALLOWED_DTYPES = {"uint64": np.uint64, "uint8": np.uint8, "int64": np.int64}
MAX_HEADER_BYTES = 1 << 16
MAX_DIMENSIONS = 8


class WireError(Exception):
    """A malformed or unexpected message."""


def encode(header: dict[str, Any], arrays=()) -> list:
    meta = []
    frames = []
    for array in arrays:
        array = np.ascontiguousarray(array)
        name = array.dtype.name
        if name not in ALLOWED_DTYPES:
            raise WireError(f"dtype {name} may not be sent")
        meta.append([name, list(array.shape)])
        frames.append(memoryview(array).cast("B") if array.size else b"")
    packed = msgpack.packb({**header, "arrays": meta}, use_bin_type=True)
    return [packed, *frames]


def decode(frames: list) -> tuple[dict[str, Any], list[np.ndarray]]:
    if not frames:
        raise WireError("empty message")
    head = frames[0]
    head_bytes = head.bytes if hasattr(head, "bytes") else bytes(head)
    if len(head_bytes) > MAX_HEADER_BYTES:
        raise WireError("header too large")
    try:
        header = msgpack.unpackb(head_bytes, raw=False, strict_map_key=True)
    except Exception as error:  # msgpack raises several unrelated types
        raise WireError(f"undecodable header: {error}") from None
    if not isinstance(header, dict) or not isinstance(header.get("arrays"), list):
        raise WireError("header is not a map with an 'arrays' list")
    meta = header["arrays"]
    if len(meta) != len(frames) - 1:
        raise WireError(f"header announces {len(meta)} arrays, message has {len(frames) - 1}")
    arrays = []
    for entry, frame in zip(meta, frames[1:]):
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                and entry[0] in ALLOWED_DTYPES):
            raise WireError(f"array description {entry!r:.100} not allowed")
        dtype = np.dtype(ALLOWED_DTYPES[entry[0]])
        shape = entry[1]
        if not (isinstance(shape, list) and len(shape) <= MAX_DIMENSIONS
                and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise WireError(f"bad shape {shape!r:.100}")
        buffer = frame.buffer if hasattr(frame, "buffer") else frame
        expected = math.prod(shape) * dtype.itemsize  # exact: a huge shape cannot wrap around
        if len(buffer) != expected:
            raise WireError(f"frame of {len(buffer)} bytes, header announces {expected}")
        arrays.append(np.frombuffer(buffer, dtype=dtype).reshape(shape))
    return header, arrays


def message_bytes(frames: list) -> int:
    return sum(len(frame) for frame in frames)
