"""Message framing: only allowlisted dtypes, exact sizes, no pickle."""

import msgpack
import numpy as np
import pytest

from twofold.mpc import wire


def test_round_trip_of_allowed_arrays():
    arrays = [np.arange(5, dtype=np.uint64), np.zeros((2, 3), np.uint8), np.zeros(0, np.int64)]
    header, back = wire.decode(wire.encode({"job": "j"}, arrays))
    assert header["job"] == "j"
    for original, received in zip(arrays, back, strict=True):
        assert original.dtype == received.dtype and np.array_equal(original, received)


@pytest.mark.parametrize("array", [np.zeros(3, np.float64), np.array([object()], dtype=object)])
def test_encode_refuses_other_dtypes(array):
    with pytest.raises(wire.WireError):
        wire.encode({}, [array])


def frames_with(meta, payloads):
    return [msgpack.packb({"arrays": meta}), *payloads]


@pytest.mark.parametrize("frames", [
    frames_with([["object", [1]]], [b"x" * 8]),
    frames_with([["float64", [1]]], [b"x" * 8]),
    frames_with([["uint64", [2]]], [b"x" * 8]),
    frames_with([["uint64", [1]]], []),
    frames_with([["uint64", [-1]]], [b""]),
    [msgpack.packb([1, 2, 3])],
    [b"\xc1\xc1 not msgpack"],
    [],
])
def test_decode_rejects_malformed_messages(frames):
    with pytest.raises(wire.WireError):
        wire.decode(frames)


def test_large_arrays_travel_in_frames_of_frame_bytes():
    """An array above FRAME_BYTES is split (CurveZMQ then pipelines encryption and
    decryption frame by frame) and put back together exactly, whatever its size's remainder."""
    words = wire.FRAME_BYTES // 8
    arrays = [np.arange(2 * words + 3, dtype=np.uint64).reshape(-1, 1),
              np.arange(words, dtype=np.uint64), np.zeros(0, np.uint8),
              np.arange(words + 1, dtype=np.int64)]
    frames = wire.encode({}, arrays)
    assert [len(frame) for frame in frames[1:]] == [
        wire.FRAME_BYTES, wire.FRAME_BYTES, 24, wire.FRAME_BYTES, 0, wire.FRAME_BYTES, 8]
    assert wire.message_bytes(frames[1:]) == sum(array.nbytes for array in arrays)
    _, back = wire.decode([frames[0], *(bytes(frame) for frame in frames[1:])])
    for original, received in zip(arrays, back, strict=True):
        assert received.dtype == original.dtype and np.array_equal(original, received)


@pytest.mark.parametrize("sizes", [
    [wire.FRAME_BYTES + 8],                   # one frame where two are due
    [8, wire.FRAME_BYTES],                    # two frames, split at the wrong place
    [wire.FRAME_BYTES, 8, 8],                 # a frame too many
])
def test_decode_rejects_arrays_split_otherwise(sizes):
    meta = [["uint64", [(wire.FRAME_BYTES + 8) // 8]]]
    with pytest.raises(wire.WireError):
        wire.decode(frames_with(meta, [bytes(size) for size in sizes]))
