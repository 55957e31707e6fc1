"""An owner's (or any client's) config file: its key and where the two servers are.

    [owner]                        # or [client], for analysts and recipients
    secret_key = "keys/alice.key_secret"
    timeout_s = 60
    [[servers]]                    # server 0, then server 1
    address = "tcp://server0.example:7000"
    public_key = "keys/server0.key"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from mpc.curve import KeyPair, load_keypair, load_public_key
from owners.upload import ServerAddress


class OwnerConfigError(ValueError):
    """An owner config (or owner flags) that cannot be used."""


@dataclass(frozen=True)
class OwnerConfig:
    keys: KeyPair
    servers: tuple[ServerAddress, ServerAddress]
    timeout_s: float = 60.0


def load_owner_config(path: Path) -> OwnerConfig:
    try:
        raw = tomllib.loads(path.read_text())
        owner, servers = raw.get("owner") or raw["client"], raw["servers"]
        if len(servers) != 2:
            raise OwnerConfigError(f"{path}: list exactly two [[servers]]: server 0, then server 1")
        return OwnerConfig(
            keys=load_keypair(path.parent / owner["secret_key"]),
            servers=tuple(ServerAddress(s["address"],
                                        load_public_key(path.parent / s["public_key"]))
                          for s in servers),
            timeout_s=float(owner.get("timeout_s", 60.0)))
    except KeyError as error:
        raise OwnerConfigError(f"{path}: missing {error}") from None
    except (OSError, ValueError, tomllib.TOMLDecodeError) as error:
        raise OwnerConfigError(f"{path}: {error}") from None
