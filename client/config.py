"""A client's config file (an owner, an analyst or a recipient): its key and where the two
servers are.

    [client]                       # or [owner]
    secret_key = "keys/alice.key_secret"
    timeout_s = 60
    [[servers]]                    # server 0, then server 1
    address = "tcp://server0.example:7000"
    public_key = "keys/server0.key"
    verify_key = "keys/server0.sign"   # optional: checks its audit log (twofold audit)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from twofold.mpc.curve import KeyPair, load_keypair, load_public_key
from twofold.mpc.errors import TwofoldError
from twofold.mpc.rpc import ServerAddress
from twofold.mpc.signing import VerifyKey, load_verify_key


class ClientConfigError(TwofoldError, ValueError):
    """A client config (or a client's flags) that cannot be used."""


@dataclass(frozen=True)
class ClientConfig:
    keys: KeyPair
    servers: tuple[ServerAddress, ServerAddress]
    timeout_s: float = 60.0
    verify_keys: tuple[VerifyKey | None, VerifyKey | None] = (None, None)  # audit logs'


def load_client_config(path: str | Path) -> ClientConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
        client, servers = raw.get("client") or raw["owner"], raw["servers"]
        if len(servers) != 2:
            raise ClientConfigError(f"{path}: list exactly two [[servers]]: server 0, then "
                                    "server 1")
        keys = load_keypair(path.parent / client["secret_key"])
        first, second = (ServerAddress(s["address"], load_public_key(path.parent / s["public_key"]))
                         for s in servers)
        first_verify, second_verify = (
            load_verify_key(path.parent / s["verify_key"]) if "verify_key" in s else None
            for s in servers)
        return ClientConfig(
            keys=keys,
            servers=(first, second),
            timeout_s=float(client.get("timeout_s", 60.0)),
            verify_keys=(first_verify, second_verify))
    except KeyError as error:
        raise ClientConfigError(f"{path}: missing {error}") from None
    except (OSError, ValueError, tomllib.TOMLDecodeError) as error:
        raise ClientConfigError(f"{path}: {error}") from None
