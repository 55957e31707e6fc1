"""Ed25519 signing keys: each server signs its audit log (servers/audit.py) with its own, and
clients check with its public half, the verify key (mpc/audit.py).

They are distributed like the CurveZMQ keys: `twofold keys generate NAME` writes NAME.sign
(the verify key, public, PEM) beside NAME.key, and NAME.sign_secret (the signing key, PKCS#8
PEM, mode 0600) beside NAME.key_secret. A server's config names its signing key; a client's
config names each server's verify key.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from twofold.mpc.files import read_secret, write_secret

SigningKey = Ed25519PrivateKey
VerifyKey = Ed25519PublicKey


def generate_signing_keypair(directory: Path, name: str) -> tuple[Path, Path]:
    """Write NAME.sign (the verify key) and NAME.sign_secret (0600); returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    public_path, secret_path = directory / f"{name}.sign", directory / f"{name}.sign_secret"
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    write_secret(secret_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return public_path, secret_path


def load_signing_key(path: Path) -> SigningKey:
    """Refused if group or others may read the file (mpc.files.read_secret)."""
    key = serialization.load_pem_private_key(read_secret(path), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 signing key")
    return key


def load_verify_key(path: Path) -> VerifyKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 verify key")
    return key


def signature_holds(key: VerifyKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True
