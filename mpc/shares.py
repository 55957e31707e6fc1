"""The layouts of secret-shared values, as types that mypy tells apart.

Each layout is a NewType of a numpy array: at run time a value is the array itself and
`Additive(x)` returns x, so the types cost nothing; to mypy, passing one layout where another
is expected is an error, and so is passing a bare array where a layout is expected. Local
numpy arithmetic on shares gives bare arrays: wrapping the result says which layout it is.

- Additive: additive shares over Z_2^64, x = x0 + x1 mod 2^64 (uint64);
- XorWords: XOR shares of 64-bit words, x = x0 ^ x1, bit j of a value in bit j of its word
  (uint64: A2B output, sort keys);
- XorPlanes: XOR shares of n values' bits as (bits, ceil(n/64)) uint64 planes, row j packing
  bit j of every value, 64 to a word (comparison trees, adders);
- XorBits: XOR shares of single bits, one uint8 0/1 per value (comparison results).
"""

from typing import NewType

import numpy as np
import numpy.typing as npt

Additive = NewType("Additive", npt.NDArray[np.uint64])
XorWords = NewType("XorWords", npt.NDArray[np.uint64])
XorPlanes = NewType("XorPlanes", npt.NDArray[np.uint64])
XorBits = NewType("XorBits", npt.NDArray[np.uint8])
