"""Base OTs from X25519: 1-out-of-2 OT of 16-byte strings, secure against a semi-honest peer.

Both servers run a batch in each direction at once (each is the sender of one batch and the
receiver of the other), in three exchanges:
1. the sender draws a key pair (s, S = sB) and an ephemeral pair (e, E = eB) and sends S, E;
2. for OT i with choice c, the receiver draws k and r and sends P_c = kB and P_(1-c) = rS:
   it knows the secret key of P_c but not of P_(1-c), whose secret is r*s;
3. the sender sends m_b XOR H(i, b, P_b, E, e * P_b) for b = 0, 1; the receiver can compute
   only H(i, c, P_c, E, k * E).
The sender's view is two uniform group elements whatever c is (kB and rsB for uniform k, r).
The receiver would need e * r * s * B for the other message, that is r times the
Diffie-Hellman value of E and S: computational Diffie-Hellman. H is SHA-256 (a random oracle).
Only X25519 from `cryptography` and hashlib are used: no curve arithmetic of our own.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)

from twofold.mpc.link import Channel

MESSAGE_BYTES = 16
POINT_BYTES = 32


def _public(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def _pad(index: int, choice: int, point: bytes, ephemeral: bytes, shared: bytes) -> bytes:
    digest = hashlib.sha256(b"twofold base OT" + index.to_bytes(8, "big") + bytes([choice])
                            + point + ephemeral + shared).digest()
    return digest[:MESSAGE_BYTES]


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _points(array: np.ndarray) -> list[X25519PublicKey]:
    return [X25519PublicKey.from_public_bytes(row.tobytes()) for row in array]


async def base_ots(channel: Channel, pairs: list[tuple[bytes, bytes]],
                   choices: list[int]) -> list[bytes]:
    """Send `pairs` (as OT sender) and receive one of each of the peer's pairs by `choices`
    (as OT receiver); both servers call this with batches of the same length."""
    if len(pairs) != len(choices):
        raise ValueError("both directions of a base OT batch have the same length")
    # 1. the sender's key S and ephemeral key E
    secret, ephemeral = X25519PrivateKey.generate(), X25519PrivateKey.generate()  # s, e
    mine = np.frombuffer(_public(secret) + _public(ephemeral), np.uint8)
    (theirs,) = await channel.exchange(mine)
    their_key, their_ephemeral = _points(theirs.reshape(2, POINT_BYTES))
    their_ephemeral_bytes = theirs[POINT_BYTES:].tobytes()
    # 2. the receiver's two public keys per OT, the chosen one first known to it only
    known = [X25519PrivateKey.generate() for _ in choices]
    offered = np.empty((len(choices), 2, POINT_BYTES), np.uint8)
    for i, (choice, key) in enumerate(zip(choices, known, strict=True)):
        blinded = X25519PrivateKey.from_private_bytes(os.urandom(POINT_BYTES))
        offered[i, choice] = np.frombuffer(_public(key), np.uint8)
        offered[i, 1 - choice] = np.frombuffer(blinded.exchange(their_key), np.uint8)
    (asked,) = await channel.exchange(offered)
    # 3. both messages, each under the key only the holder of its secret can derive
    ephemeral_bytes = _public(ephemeral)
    masked = np.empty((len(pairs), 2, MESSAGE_BYTES), np.uint8)
    for i, pair in enumerate(pairs):
        for b in (0, 1):
            point = asked[i, b].tobytes()
            shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(point))
            masked[i, b] = np.frombuffer(
                _xor(pair[b], _pad(i, b, point, ephemeral_bytes, shared)), np.uint8)
    (answers,) = await channel.exchange(masked)
    received = []
    for i, (choice, key) in enumerate(zip(choices, known, strict=True)):
        point = offered[i, choice].tobytes()
        shared = key.exchange(their_ephemeral)
        received.append(_xor(answers[i, choice].tobytes(),
                             _pad(i, choice, point, their_ephemeral_bytes, shared)))
    return received
