"""Message framing: only allowlisted dtypes, exact sizes, no pickle."""

import msgpack
import numpy as np
import pytest

from mpc import wire


def test_round_trip_of_allowed_arrays():
    arrays = [np.arange(5, dtype=np.uint64), np.zeros((2, 3), np.uint8), np.zeros(0, np.int64)]
    header, back = wire.decode(wire.encode({"job": "j"}, arrays))
    assert header["job"] == "j"
    for original, received in zip(arrays, back):
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
