"""TOML configuration of a compute server and of the dealer.

A server's `correlations` says where correlated randomness comes from: "dealer" (the default;
the config names the dealer's address and key) or "ot" (the two servers make it between
themselves; no dealer). Both servers must say the same, which they check at every job.

With "ot", `idle_cots = N` has the running servers make N COTs per direction whenever no job
runs and keep them for later jobs (servers.preprocessing); the smaller of the two servers'
values counts, and 0 (the default) on either turns it off.

The optional [quotas] section holds the operator's limits (Quotas; docs/deployment.md). Both
servers must set the same: server 1 refuses to start a job when server 0's differ.

Relative paths in a config file are resolved against the file's folder.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from twofold.mpc.curve import KeyPair, load_keypair, load_public_key
from twofold.mpc.errors import TwofoldError
from twofold.mpc.link import DEFAULT_TIMEOUT_S
from twofold.mpc.session import CORRELATIONS, Endpoints
from twofold.mpc.signing import SigningKey, load_signing_key
from twofold.servers.storage import check_id

MAX_IDLE_COTS = 1 << 28  # per direction; at 17 bytes each way, 9 GB on each server


class ConfigError(TwofoldError, ValueError):
    """A config file that cannot be used, with the file and key named."""


def _read(path: Path, section: str) -> dict:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path}: {error}") from None
    if section not in data:
        raise ConfigError(f"{path}: missing [{section}] section")
    return data[section]


def _field(path: Path, table: dict, section: str, key: str, kind=str):
    if key not in table:
        raise ConfigError(f"{path}: [{section}] needs '{key}'")
    value = table[key]
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind):
        raise ConfigError(f"{path}: [{section}] '{key}' must be a {kind.__name__}")
    return value


def _key_path(path: Path, relative: str) -> Path:
    return (path.parent / relative).resolve()


def load_server_endpoints(path: Path) -> Endpoints:
    table = _read(path, "server")
    get = lambda key, kind=str: _field(path, table, "server", key, kind)  # noqa: E731
    party = get("party", int)
    if party not in (0, 1):
        raise ConfigError(f"{path}: [server] 'party' must be 0 or 1")
    correlations = table.get("correlations", "dealer")
    if correlations not in CORRELATIONS:
        raise ConfigError(f"{path}: [server] 'correlations' must be one of "
                          f"{', '.join(repr(c) for c in CORRELATIONS)}")
    try:
        cot_store: Path | None = _key_path(path, get("data_dir")) / "correlations"
        dealer_address, dealer_public = None, None
        if correlations == "dealer":  # with "ot" the two servers need no third party
            cot_store = None
            dealer_address = get("dealer_address")
            dealer_public = load_public_key(_key_path(path, get("dealer_public_key")))
        return Endpoints(
            party_id=party,
            keys=load_keypair(_key_path(path, get("secret_key"))),
            peer_public=load_public_key(_key_path(path, get("peer_public_key"))),
            peer_address=get("peer_address"),
            timeout_s=float(table.get("timeout_s", DEFAULT_TIMEOUT_S)),
            correlations=correlations,
            dealer_public=dealer_public,
            dealer_address=dealer_address,
            cot_store=cot_store,
        )
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: {error}") from None


@dataclass(frozen=True)
class Limits:
    """One client's limits; the defaults are generous enough to change nothing for most
    deployments."""

    owner_rows: int = 1 << 40  # rows of an owner's stored versions, all tables, with an upload
    owner_bytes: int = 1 << 44  # bytes of shares of those versions on one server (8 per cell)
    client_jobs: int = 32  # jobs a client may have queued or running at once
    job_seconds: float = 86400.0  # a job running longer is stopped on both servers


@dataclass(frozen=True)
class Quotas:
    """[quotas] sets everyone's Limits; [quotas.clients.NAME] changes some of them for NAME."""

    default: Limits = field(default_factory=Limits)
    clients: dict[str, Limits] = field(default_factory=dict)

    def of(self, client: str) -> Limits:
        return self.clients.get(client, self.default)

    def as_message(self) -> dict:
        """What server 0 sends at every job start, for server 1 to compare with its own."""
        return {"default": asdict(self.default),
                "clients": {name: asdict(limits) for name, limits in sorted(self.clients.items())}}


def _limits(path: Path, table, where: str, base: Limits) -> Limits:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{where}] must be a section")
    values: dict[str, Any] = {}
    for key, value in table.items():
        default = getattr(base, key, None)
        if default is None:
            raise ConfigError(f"{path}: [{where}] has no '{key}'; it holds "
                              f"{', '.join(asdict(base))}")
        decimal = isinstance(default, float)
        if (not isinstance(value, (int, float) if decimal else int) or isinstance(value, bool)
                or not value > 0):
            raise ConfigError(f"{path}: [{where}] '{key}' must be a positive "
                              f"{'number' if decimal else 'whole number'}")
        values[key] = float(value) if decimal else value
    return replace(base, **values)


def load_quotas(path: Path, table, clients: dict[str, bytes]) -> Quotas:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [quotas] must be a section")
    overrides = table.get("clients", {})
    default = _limits(path, {k: v for k, v in table.items() if k != "clients"}, "quotas",
                      Limits())
    if not isinstance(overrides, dict):
        raise ConfigError(f"{path}: [quotas.clients] must be a section")
    unknown = sorted(set(overrides) - set(clients))
    if unknown:
        raise ConfigError(f"{path}: [quotas.clients] names {', '.join(unknown)}, not a "
                          "registered owner or recipient")
    return Quotas(default, {name: _limits(path, limits, f"quotas.clients.{name}", default)
                            for name, limits in overrides.items()})


@dataclass(frozen=True)
class ServerConfig:
    endpoints: Endpoints
    listen: str  # owners and the peer's control requests connect here
    peer_service_address: str  # the other server's `listen`
    schema_path: Path
    data_dir: Path
    clients: dict[str, bytes]  # owners' and recipients' names -> public keys
    signing_key: SigningKey  # signs the audit log (servers/audit.py)
    idle_cots: int = 0  # OT mode: COTs per direction to make while idle and keep (0: none)
    quotas: Quotas = field(default_factory=Quotas)


def load_server_config(path: Path) -> ServerConfig:
    endpoints = load_server_endpoints(path)
    table = _read(path, "server")
    get = lambda key, kind=str: _field(path, table, "server", key, kind)  # noqa: E731
    raw = tomllib.loads(path.read_text())
    clients = {}
    for section in ("owners", "recipients"):
        try:
            for name, key_file in raw.get(section, {}).items():
                check_id("client name", name)  # it names the folder of its jobs (servers.jobs)
                clients[name] = load_public_key(_key_path(path, key_file))
        except (OSError, ValueError) as error:
            raise ConfigError(f"{path}: [{section}] {error}") from None
    idle_cots = table.get("idle_cots", 0)
    if not isinstance(idle_cots, int) or isinstance(idle_cots, bool) or not (
            0 <= idle_cots <= MAX_IDLE_COTS):
        raise ConfigError(f"{path}: [server] 'idle_cots' must be a whole number from 0 to "
                          f"{MAX_IDLE_COTS}")
    if idle_cots and endpoints.correlations != "ot":
        raise ConfigError(f"{path}: [server] 'idle_cots' needs correlations = \"ot\"")
    signing_path = _key_path(path, get("signing_key"))
    try:
        signing_key = load_signing_key(signing_path)
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: [server] 'signing_key': {error}") from None
    return ServerConfig(endpoints=endpoints, listen=get("listen"),
                        peer_service_address=get("peer_service_address"),
                        schema_path=_key_path(path, get("schema")),
                        data_dir=_key_path(path, get("data_dir")), clients=clients,
                        signing_key=signing_key, idle_cots=idle_cots,
                        quotas=load_quotas(path, raw.get("quotas", {}), clients))


@dataclass(frozen=True)
class DealerConfig:
    keys: KeyPair
    listen: str
    server_publics: tuple[bytes, bytes]


def load_dealer_config(path: Path) -> DealerConfig:
    table = _read(path, "dealer")
    get = lambda key, kind=str: _field(path, table, "dealer", key, kind)  # noqa: E731
    servers = get("server_public_keys", list)
    if len(servers) != 2:
        raise ConfigError(f"{path}: [dealer] 'server_public_keys' must list server 0's and "
                          "server 1's public key files")
    try:
        keys, listen = load_keypair(_key_path(path, get("secret_key"))), get("listen")
        first, second = (load_public_key(_key_path(path, p)) for p in servers)
        return DealerConfig(keys=keys, listen=listen, server_publics=(first, second))
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: {error}") from None
