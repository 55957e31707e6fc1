"""Two real servers (in-process tasks, real CurveZMQ sockets, real storage) for upload tests."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.audit import logs_agree
from tests.support.harness import free_address, keypair, shares_of
from twofold.config import ClientConfig
from twofold.mpc.curve import KeyPair
from twofold.mpc.dealer import Dealer
from twofold.mpc.prg import Prg
from twofold.mpc.rpc import ServerAddress
from twofold.mpc.session import Endpoints
from twofold.mpc.signing import SigningKey
from twofold.owners.policy import Policy
from twofold.owners.prepare import prepare
from twofold.owners.schema import load_schema
from twofold.owners.upload import upload
from twofold.servers.config import ServerConfig
from twofold.servers.server import Server
from twofold.servers.storage import Storage, UploadRecord

SCHEMA = """
[schema]
fact = "orders"
primary_private = "customers"

[tables.customers]
owner = "alice"
primary_key = "id"
[tables.customers.columns]
id = { type = "key" }
age = { type = "integer", min = 0, max = 150 }
income = { type = "decimal", min = -1e6, max = 1e6 }
member = { type = "boolean" }
region = { type = "categorical", values = ["north", "south", "east"] }

[tables.orders]
owner = "bob"
primary_key = ["order_id", "line"]
foreign_keys = [{ columns = ["customer_id"], references = "customers" }]
[tables.orders.columns]
order_id = { type = "key", format = "string" }
line = { type = "key" }
customer_id = { type = "key" }
amount = { type = "decimal", min = 0, max = 10000 }
"""


@dataclass
class Deployment:
    folder: Path
    schema_path: Path
    server_keys: list[KeyPair]
    owner_keys: dict[str, KeyPair]
    configs: list[ServerConfig]
    dealer_keys: KeyPair
    signing_keys: list[SigningKey]

    @property
    def schema(self):
        return load_schema(self.schema_path)

    def addresses(self) -> tuple[ServerAddress, ServerAddress]:
        return tuple(ServerAddress(c.listen, k.public)
                     for c, k in zip(self.configs, self.server_keys, strict=True))

    def client(self, name: str, timeout_s: float = 60.0) -> ClientConfig:
        """The config a registered client would load from its file."""
        first, second = (key.public_key() for key in self.signing_keys)
        return ClientConfig(self.owner_keys[name], self.addresses(), timeout_s, (first, second))

    def stored(self, table: str) -> dict[str, np.ndarray] | None:
        """Test-only: reconstruct the current version of a table from both servers' files."""
        views = []
        for config in self.configs:
            storage = Storage(config.data_dir)
            record = storage.current(table)
            views.append(None if record is None else storage.load(record))
            storage.close()
        if None in views:
            assert views == [None, None], "a table is ready on one server only"
            return None
        return {name: views[0][name] + views[1][name] for name in views[0]}


def make_deployment(folder: Path, schema_text: str = SCHEMA, owners=("alice", "bob"),
                    timeout_s: float = 10.0, correlations: str = "dealer"):
    schema_path = folder / "schema.toml"
    schema_path.write_text(schema_text)
    server_keys, dealer_keys = [keypair(), keypair()], keypair()
    signing_keys = [Ed25519PrivateKey.generate() for _ in (0, 1)]
    owner_keys = {name: keypair() for name in owners}
    listen = [free_address(), free_address()]
    peer, dealer = free_address(), free_address()
    configs = [ServerConfig(
        endpoints=Endpoints(p, server_keys[p], server_keys[1 - p].public, peer,
                            dealer_keys.public, dealer, timeout_s=timeout_s,
                            correlations=correlations),
        listen=listen[p], peer_service_address=listen[1 - p], schema_path=schema_path,
        data_dir=folder / f"data{p}",
        clients={name: key.public for name, key in owner_keys.items()},
        signing_key=signing_keys[p]) for p in (0, 1)]
    return Deployment(folder, schema_path, server_keys, owner_keys, configs, dealer_keys,
                      signing_keys)


@asynccontextmanager
async def running(deployment: Deployment, which=(0, 1)):
    """The chosen servers and the dealer, as tasks of this event loop. When both ran and the
    test's body ended without an error, their audit logs must agree (tests/support/audit.py)."""
    servers = [Server(deployment.configs[p]) for p in which]
    dealer = Dealer(deployment.dealer_keys, tuple(k.public for k in deployment.server_keys),
                    deployment.configs[0].endpoints.dealer_address)
    events = [asyncio.Event() for _ in range(len(servers) + 1)]
    tasks = [asyncio.create_task(s.serve(e))
             for s, e in zip([*servers, dealer], events, strict=True)]
    try:
        await until_ready(tasks, events)
        yield servers
        if len(servers) == 2:
            await logs_agree(deployment.configs, deployment.signing_keys)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def until_ready(tasks: list[asyncio.Task], events: list[asyncio.Event]) -> None:
    """Until every service is listening. One that ends first (its address taken by another
    process between free_address() and its bind, on a loaded machine) raises its error here,
    instead of leaving the test waiting for ever."""
    ready = asyncio.ensure_future(asyncio.gather(*(e.wait() for e in events)))
    done, _ = await asyncio.wait([ready, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if ready not in done:
        ready.cancel()
        for task in done:
            task.result()  # the service's own error
        raise RuntimeError("a service stopped before it was ready")


# 300 customers and 900 orders (three per customer): most upload and job tests
CUSTOMERS = "id,age,income,member,region\n" + "".join(
    f"{i},{20 + i % 50},{i * 1.25 - 30},{'yes' if i % 3 else 'no'},"
    f"{['north', 'south', 'east'][i % 3]}\n"
    for i in range(1, 301))
ORDERS = "order_id,line,customer_id,amount\n" + "".join(
    f"o{i // 3},{i % 3},{1 + i % 300},{i % 97}.5\n" for i in range(900))


# regions: north has customers 1-3 (one order each), south 4-5 (three orders each), east 6-8
REGION_CUSTOMERS = "id,age,income,member,region\n" + "".join(
    f"{i},{30 + i},{i * 10},{'yes' if i % 2 else 'no'},{region}\n"
    for i, region in enumerate(["north"] * 3 + ["south"] * 2 + ["east"] * 3, start=1))
REGION_ORDERS = "order_id,line,customer_id,amount\n" + "".join(
    f"o{i},0,{customer},{10 + i}\n"
    for i, customer in enumerate([1, 2, 3, 4, 4, 4, 5, 5, 5, 6, 7, 8]))


async def upload_file(deployment, owner, table, keys=None, **options):
    prepared = prepare(deployment.folder / f"{table}.csv", deployment.schema, table,
                       pad_to=options.pop("pad_to", None), dummy_prg=Prg.fresh())
    result = await upload(prepared, deployment.schema, keys or deployment.owner_keys[owner],
                          deployment.addresses(), timeout_s=options.pop("timeout_s", 5.0),
                          **options)
    return prepared, result


def store_unchecked(deployment, prepared, owner: str, policy: Policy,
                    upload_id: str = "unchecked") -> None:
    """Test-only: a version written straight into both servers' stores and made live, as
    servers stored uploads before they checked their values (servers/upload_checks.py): what
    jobs must still withstand. Call it while the servers are stopped."""
    rng = np.random.default_rng()
    shares = [shares_of(values, rng) for values in prepared.columns.values()]
    record = UploadRecord(upload_id, prepared.table.name, owner, prepared.rows,
                          deployment.schema.hash, "unchecked", tuple(prepared.columns),
                          policy.to_json())
    for party, config in enumerate(deployment.configs):
        storage = Storage(config.data_dir)
        staged = storage.stage(record)
        staged.append(0, [pair[party] for pair in shares])
        storage.make_live(storage.commit(staged))
        storage.close()


def reconstruct_outputs(outputs) -> dict[str, np.ndarray]:
    """Every stored column, reconstructed: what a recipient holding both shares sees."""
    first, second = outputs
    assert [c.name for c in first.columns] == [c.name for c in second.columns]
    return {c.name: (a + b).view(np.int64) for c, a, b in
            zip(first.columns, first.shares, second.shares, strict=True)}
