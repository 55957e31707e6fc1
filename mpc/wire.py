"""Message framing: a msgpack header followed by raw array frames. Nothing is pickled.

A message is [header, frames of array 1, ..., frames of array k]. The header is a msgpack map
whose "arrays" entry lists [dtype, shape] for each array. An array travels in frames of
FRAME_BYTES (the last one shorter), because CurveZMQ encrypts and decrypts frame by frame: the
sender's encryption of one frame overlaps the receiver's decryption of the one before, where a
single large frame is encrypted whole, then sent, then decrypted whole (about twice as slow:
docs/mpc.md, "Measurements behind design choices"). Received dtypes must be on the allowlist
and every frame must have exactly the size its array's description implies, or the message
is rejected.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

ALLOWED_DTYPES = {"uint64": np.uint64, "uint8": np.uint8, "int64": np.int64}
MAX_HEADER_BYTES = 1 << 16
MAX_DIMENSIONS = 8
FRAME_BYTES = 1 << 20


class WireError(Exception):
    """A malformed or unexpected message."""


def encode(header: dict[str, Any], arrays=()) -> list:
    meta = []
    frames: list[bytes | memoryview] = []
    for array in arrays:
        array = np.ascontiguousarray(array)
        name = array.dtype.name
        if name not in ALLOWED_DTYPES:
            raise WireError(f"dtype {name} may not be sent")
        meta.append([name, list(array.shape)])
        data = array.data.cast("B") if array.size else b""
        frames.extend(data[start:start + FRAME_BYTES]
                      for start in range(0, max(len(data), 1), FRAME_BYTES))
    packed = msgpack.packb({**header, "arrays": meta}, use_bin_type=True)
    return [packed, *frames]


def check_size(frames: list, max_frames: int, max_bytes: int) -> None:
    """A whole message is bounded, not only each frame (which the socket's MAXMSGSIZE
    bounds): at most max_frames frames of max_bytes in all."""
    if len(frames) > max_frames:
        raise WireError(f"a message of {len(frames)} frames, more than the {max_frames} allowed")
    size = message_bytes(frames)
    if size > max_bytes:
        raise WireError(f"a message of {size} bytes, more than the {max_bytes} allowed")


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
    if not all(isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
               and entry[0] in ALLOWED_DTYPES for entry in meta):
        raise WireError(f"array description in {meta!r:.100} not allowed")
    if not all(isinstance(shape, list) and len(shape) <= MAX_DIMENSIONS
               and all(isinstance(d, int) and d >= 0 for d in shape) for _, shape in meta):
        raise WireError(f"bad shape in {meta!r:.100}")
    # exact: a huge shape cannot wrap around
    sizes = [math.prod(shape) * np.dtype(ALLOWED_DTYPES[name]).itemsize for name, shape in meta]
    counts = [max(-(-size // FRAME_BYTES), 1) for size in sizes]
    if sum(counts) != len(frames) - 1:
        raise WireError(f"header announces {len(meta)} arrays in {sum(counts)} frames, message "
                        f"has {len(frames) - 1}")
    arrays, position = [], 1
    for (name, shape), size, count in zip(meta, sizes, counts, strict=True):
        parts = [frame.buffer if hasattr(frame, "buffer") else frame
                 for frame in frames[position:position + count]]
        position += count
        expected = [FRAME_BYTES] * (count - 1) + [size - FRAME_BYTES * (count - 1)]
        if [len(part) for part in parts] != expected:
            raise WireError(f"frames of {sum(map(len, parts))} bytes in all, header "
                            f"announces {size} in frames of {FRAME_BYTES}")
        dtype = np.dtype(ALLOWED_DTYPES[name])
        if count == 1:
            arrays.append(np.frombuffer(parts[0], dtype=dtype).reshape(shape))
            continue
        array = np.empty(shape, dtype=dtype)
        flat = array.reshape(-1).view(np.uint8)
        for start, part in zip(range(0, size, FRAME_BYTES), parts, strict=True):
            flat[start:start + len(part)] = np.frombuffer(part, np.uint8)
        arrays.append(array)
    return header, arrays


def request_id(frames: list) -> int | None:
    """The "rid" of a message refused as a whole, if its header frame holds one."""
    head = frames[0].bytes if hasattr(frames[0], "bytes") else bytes(frames[0])
    if len(head) > MAX_HEADER_BYTES:
        return None
    try:
        header = msgpack.unpackb(head, raw=False, strict_map_key=True)
    except Exception:  # msgpack raises several unrelated types
        return None
    rid = header.get("rid") if isinstance(header, dict) else None
    return rid if isinstance(rid, int) and not isinstance(rid, bool) else None


def message_bytes(frames: list) -> int:
    return sum(len(frame) for frame in frames)
