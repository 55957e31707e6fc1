"""CurveZMQ keys and fail-closed authentication.

Every listening socket is a CURVE server whose ZAP handler accepts only the public keys in its
registry; a CURVE server without a ZAP handler would accept any client, so servers never bind
without one. Connecting sockets pin the server's public key. The ZAP handler maps each accepted
key to a name, which arrives with every message as the frame property "User-Id".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.asyncio import AsyncioAuthenticator

from twofold.mpc.files import read_secret, write_secret

ZAP_DOMAIN = "twofold"


@dataclass(frozen=True)
class KeyPair:
    public: bytes  # z85, 40 bytes
    secret: bytes


def generate_keypair(directory: Path, name: str) -> tuple[Path, Path]:
    """Write NAME.key (public) and NAME.key_secret in ZeroMQ's certificate format. The secret
    file is created with mode 0600 (mpc.files.write_secret)."""
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.curve_keypair()
    public_path, secret_path = directory / f"{name}.key", directory / f"{name}.key_secret"
    curve = f'curve\n    public-key = "{public.decode()}"\n'
    public_path.write_text(f"#   ZeroMQ CURVE Public Certificate\n\nmetadata\n{curve}")
    write_secret(secret_path, (f"#   ZeroMQ CURVE **Secret** Certificate\n#   DO NOT PROVIDE THIS "
                               f"FILE TO OTHER USERS\n\nmetadata\n{curve}    secret-key = "
                               f'"{secret.decode()}"\n').encode())
    return public_path, secret_path


def load_keypair(secret_path: Path) -> KeyPair:
    """Refused if group or others may read the file (mpc.files.read_secret)."""
    read_secret(secret_path)
    public, secret = zmq.auth.load_certificate(str(secret_path))
    if secret is None:
        raise ValueError(f"{secret_path} holds no secret key")
    return KeyPair(public=public, secret=secret)


def load_public_key(path: Path) -> bytes:
    public, _ = zmq.auth.load_certificate(str(path))
    return public


class _Registry:
    def __init__(self, names_by_key: dict[bytes, str]):
        self.names_by_key = names_by_key

    def callback(self, domain: str, key: bytes) -> bool:
        return domain == ZAP_DOMAIN and key in self.names_by_key


class KeyAuthenticator(AsyncioAuthenticator):
    """ZAP handler that admits only registered public keys and names them in User-Id."""

    def __init__(self, context: zmq.asyncio.Context, names_by_key: dict[bytes, str]):
        super().__init__(context)
        self._registry = _Registry(dict(names_by_key))

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self._registry.names_by_key[zmq.utils.z85.encode(client_public_key)]

    def start(self) -> None:  # must run inside the event loop
        super().start()
        self.configure_curve_callback(ZAP_DOMAIN, credentials_provider=self._registry)


def make_server_socket(sock: zmq.Socket, keys: KeyPair) -> None:
    """Turn sock into a CURVE server under the enforced ZAP domain (call before bind)."""
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_server = True
    sock.zap_domain = ZAP_DOMAIN.encode()
    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)


def make_client_socket(sock: zmq.Socket, keys: KeyPair, server_public: bytes) -> None:
    """Turn sock into a CURVE client that only talks to the holder of server_public."""
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_serverkey = server_public
