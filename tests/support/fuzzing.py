"""Random and mutated messages for every request handler of the servers and the dealer, sent
from registered keys to real processes; and the valid job that must still come out right.

Used by tests/test_fuzz.py (a few hundred messages, in CI) and tools/fuzz_servers.py (the
full run, tens of thousands). Test-only: Python's seeded `random` makes runs reproducible.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import numpy as np
import zmq

import twofold
from twofold.cli.local_cluster import LocalCluster
from twofold.mpc.actions import CLIENT_ACTIONS, DEALER_ACTIONS, PEER_ACTIONS
from twofold.mpc.correlations import KINDS
from twofold.mpc.curve import KeyPair, load_keypair, load_public_key
from twofold.mpc.dealer import MAX_REQUEST_BYTES
from twofold.owners.schema import load_schema
from twofold.servers.config import load_dealer_config
from twofold.servers.server import MAX_FRAME_BYTES

STATISTICS = ('[job]\nrecipients = ["alice"]\ntables = ["customers"]\n'
              '[statistics]\ncolumns = ["customers.age"]\n')
WILD = [None, True, False, 0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1,
        0.5, -1e308, math.inf, -math.inf, math.nan, "", "..", "/etc/passwd", "a" * 65,
        "x" * 3000, "\u00e9\u0000\ud7ff", b"\x00\xff", [], [1], [[1, 2], [3]], {}, {"a": 1},
        {"action": "begin"}, [None] * 50, "[]", "{}", '{"recipients": 5}', "customers"]
CURVE_OVERHEAD = 33  # MAXMSGSIZE applies to the encrypted frame: command, nonce, MAC, flags
DROP_WAIT_S = 0.2  # how long to confirm that a frame above the limit got no reply
DTYPES = ["uint64", "uint8", "int64", "float64", "object", "", "U10", "<u8", 7, None]


@dataclass
class Tally:
    """What one fuzz run saw."""

    sent: int = 0
    ok: int = 0  # accepted (some mutations are still valid requests)
    refused: int = 0  # an error reply
    dropped: int = 0  # no reply, as expected for frames above the size limit
    unanswered: int = 0  # no reply although one was due
    deaths: int = 0
    per_handler: dict[str, int] = field(default_factory=dict)
    unanswered_examples: list[str] = field(default_factory=list)  # the first few, for a report


class Generator:
    """Requests for one handler: a valid one, then mutated (fields, arrays, frames, sizes)."""

    def __init__(self, rng: random.Random, schema_hash: str, columns: list[str]):
        self.rng, self.schema_hash, self.columns = rng, schema_hash, columns
        self.upload_ids: list[str] = ["fuzz0"]
        self.job_ids: list[str] = ["fuzzjob0"]

    def ident(self) -> str:
        return "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz0123456789_-")
                       for _ in range(self.rng.randint(1, 12))).lstrip("-_") or "z"

    def words(self, count: int) -> np.ndarray:
        return np.frombuffer(self.rng.randbytes(8 * count), dtype=np.uint64)

    def valid(self, action: str) -> tuple[dict, list[np.ndarray]]:
        rng = self.rng
        if action == "begin":
            upload_id = self.ident()
            self.upload_ids = (self.upload_ids + [upload_id])[-8:]
            return {"action": "begin", "upload_id": upload_id, "table": "customers",
                    "schema_hash": self.schema_hash, "rows": rng.randint(1, 64),
                    "columns": list(self.columns), "digest": self.ident(), "policy": "{}"}, []
        if action == "chunk":
            rows = rng.randint(0, 16)
            return ({"action": "chunk", "upload_id": rng.choice(self.upload_ids),
                     "start": rng.choice([0, 0, rows, 64])},
                    [self.words(rows) for _ in self.columns])
        if action in ("commit", "activate"):
            return {"action": action, "upload_id": rng.choice(self.upload_ids)}, []
        if action in ("withdraw", "withdraw_end"):  # not customers, unless mutated to it
            return {"action": action, "table": rng.choice(["orders", "nope"])}, []
        if action in ("status", "budget"):
            return {"action": action, "table": rng.choice(["customers", "orders", "nope"])}, []
        if action == "job_submit":
            job_id = self.ident()
            self.job_ids = (self.job_ids + [job_id])[-8:]
            return {"action": "job_submit", "job_id": job_id, "spec": STATISTICS}, []
        if action == "job_explain":
            return {"action": "job_explain", "spec": STATISTICS}, []
        if action in ("job_status", "job_cancel", "fetch_output"):  # by id or submitter/id
            job_id = rng.choice(self.job_ids)
            return {"action": action, "job_id": rng.choice([job_id, f"alice/{job_id}"])}, []
        if action in ("job_start", "job_abandon"):
            return {"action": action, "submitter": "alice", "job_id": rng.choice(self.job_ids),
                    "spec_hash": self.ident(), "error": self.ident()}, []
        if action == "peer_check":
            return {"action": "peer_check", "record": {
                "upload_id": rng.choice(self.upload_ids), "table_name": "customers",
                "owner": "alice", "rows": rng.randint(1, 64), "schema_hash": self.schema_hash,
                "digest": self.ident(), "columns": list(self.columns), "policy": "{}",
                "state": "stored"}}, []
        if action == "check_start":
            return {"action": action, "owner": "alice", "upload_id": rng.choice(self.upload_ids),
                    "digest": self.ident(), "session_id": self.ident()}, []
        if action == "preprocess_start":
            return {"action": action, "session_id": self.ident()}, []
        if action == "open":
            return {"action": "open", "job": rng.choice(self.job_ids)}, []
        if action == "close":
            return {"action": "close", "job": rng.choice(self.job_ids)}, []
        if action == "get":  # a batch of [seq, kind, params] requests
            kinds = [rng.choice(sorted(KINDS)) for _ in range(rng.randint(1, 3))]
            return {"action": "get", "job": self.job_ids[0],
                    "requests": [[rng.randint(0, 10**6), kind, self.params(kind)]
                                 for kind in kinds]}, []
        return {"action": action}, []

    def params(self, kind: str) -> dict:
        rng, small = self.rng, lambda: rng.randint(0, 64)
        return {"beaver_triples": {"shape": [small()]},
                "and_triples": {"shape": [small(), small()]},
                "and_monomials": {"shape": [small()], "monomials": [[rng.randint(0, 9),
                                                                     rng.randint(0, 3)]]},
                "bit_row_triples": {"rows": small(), "n": small()},
                "matrix_triples": {"dims": [small(), small(), small()]},
                "dabits": {"shape": [small()]}, "bit_triples": {"shape": [small()]},
                "edabits": {"shape": [small()]},
                "truncation_pairs": {"shape": [small()], "frac_bits": 16},
                # entries that are no power of two up to 64, or no such sender: refused
                "one_of_n": {"shape": [small()], "entries": rng.choice([1, 2, 3, 64, 128]),
                             "sender": rng.randint(0, 2), "width": rng.randint(0, 3)},
                "truncated_triples": {"shape": [small()], "frac_bits": 16},
                "permutation_masks": {"n": small(), "columns": "ax", "permuter": rng.randint(0, 1)},
                "row_mask": {"rows": small() + 1, "columns": small() + 1},
                "masked_products": {"rows": [small() for _ in range(small() + 1)],
                                    "columns": small() + 1},
                }[kind]

    def wild(self):
        value = self.rng.choice(WILD)
        if isinstance(value, list) and self.rng.random() < 0.3:
            return [self.wild() for _ in range(self.rng.randint(0, 4))]
        return value

    def huge_shape(self) -> list:
        return self.rng.choice([[2**62], [2**64 - 1], [2**32, 2**32], [2**40, 2**40, 2**40],
                                [-1], [1] * 9, [2**28 + 1], [3, -4], ["7"], [1.5], None, 5])

    def mutate(self, header: dict, arrays: list) -> list:
        """Frames of a mutated request (header, then array frames)."""
        rng = self.rng
        header, meta = dict(header), [[a.dtype.name, list(a.shape)] for a in arrays]
        payloads = [a.tobytes() for a in arrays]
        for _ in range(rng.randint(1, 3)):
            choice = rng.randrange(12)
            keys = [k for k in header if k != "action"] or ["action"]
            if choice == 0:
                header.pop(rng.choice(keys), None)
            elif choice in (1, 2, 3):
                header[rng.choice(keys)] = self.wild()
            elif choice == 4:
                header[self.ident()] = self.wild()
            elif choice == 5 and "params" in header and isinstance(header["params"], dict):
                params = header["params"]
                key = rng.choice(list(params) or ["shape"])
                params[key] = rng.choice([self.huge_shape(), self.wild()])
            elif choice == 6:  # a frame more or fewer than announced
                if payloads and rng.random() < 0.5:
                    payloads.pop()
                else:
                    payloads.append(rng.randbytes(rng.choice([0, 8, 13])))
            elif choice == 7:  # a shape that overflows or does not match
                meta.append([rng.choice(["uint64", "int64"]), self.huge_shape()])
                payloads.append(rng.randbytes(8))
            elif choice == 8:  # a dtype off the list, or the wrong one
                if meta:
                    meta[rng.randrange(len(meta))][0] = rng.choice(DTYPES)
                else:
                    meta.append([rng.choice(DTYPES), [1]])
                    payloads.append(rng.randbytes(8))
            elif choice == 9:  # two-dimensional arrays, or uint8 shares
                meta = [["uint64", [2, len(p) // 16]] if len(p) % 16 == 0 else m
                        for m, p in zip(meta, payloads, strict=False)]
            elif choice == 10:  # one large frame, 8 bytes to 1 MiB
                count = 1 << rng.randint(0, 17)
                meta.append(["uint64", [count]])
                payloads.append(bytes(8 * count))
            else:
                header["action"] = rng.choice([*CLIENT_ACTIONS, *PEER_ACTIONS, *DEALER_ACTIONS,
                                               "nope", 7, None])
        packed = msgpack.packb({**header, "arrays": meta}, use_bin_type=True)
        if rng.random() < 0.05:  # flip bits of the header itself
            flipped = bytearray(packed)
            for _ in range(rng.randint(1, 4)):
                flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            packed = bytes(flipped)
        return [packed, *payloads]

    def raw(self) -> list:
        """Frames that are not a request at all."""
        rng = self.rng
        kind = rng.randrange(4)
        if kind == 0:
            head = rng.randbytes(rng.randint(0, 64))
        elif kind == 1:
            head = msgpack.packb(self.wild(), use_bin_type=True)
        elif kind == 2:
            head = msgpack.packb({"action": "hello", "arrays": self.wild()}, use_bin_type=True)
        else:
            head = bytes(rng.randint(65537, 70000))  # above the header limit
        return [head] + [rng.randbytes(rng.randint(0, 24)) for _ in range(rng.randint(0, 3))]

    def message(self, action: str) -> list:
        roll = self.rng.random()
        if roll < 0.1:
            return self.raw()
        header, arrays = self.valid(action)
        if roll < 0.25:
            return [msgpack.packb({**header, "arrays": [[a.dtype.name, list(a.shape)]
                                                        for a in arrays]}, use_bin_type=True),
                    *[a.tobytes() for a in arrays]]
        return self.mutate(header, arrays)


class Client:
    """A DEALER socket with a registered key; one message at a time, waiting for the reply."""

    def __init__(self, keys: KeyPair, server_public: bytes, address: str, wait_s: float):
        self.keys, self.server_public, self.address, self.wait_s = (keys, server_public,
                                                                    address, wait_s)
        self.context = zmq.Context()
        self._connect()

    def _connect(self) -> None:
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.linger = 0
        self.socket.curve_secretkey = self.keys.secret
        self.socket.curve_publickey = self.keys.public
        self.socket.curve_serverkey = self.server_public
        self.socket.connect(self.address)

    def request(self, frames: list, wait_s: float | None = None) -> dict | None:
        """The decoded reply header, or None when no reply came within wait_s (default: the
        client's wait); then a fresh connection."""
        self.socket.send_multipart(frames)
        if not self.socket.poll(int(1000 * (self.wait_s if wait_s is None else wait_s))):
            self.socket.close(0)
            self._connect()
            return None
        return msgpack.unpackb(self.socket.recv_multipart()[0], raw=False)

    def close(self) -> None:
        self.socket.close(0)
        self.context.term()


def _oversize(limit: int) -> list:
    return [msgpack.packb({"action": "hello", "arrays": [["uint8", [limit + 1]]]}),
            bytes(limit + 1)]


def fuzz(cluster: LocalCluster, target: str, per_handler: int, seed: int,
         wait_s: float = 10.0, oversize: int = 2) -> Tally:
    """Send per_handler messages to each handler of `target` ("server" as owner alice and as
    the peer, or "dealer" as server 0), plus `oversize` frames above the socket's limit; the
    processes are checked after every message."""
    rng = random.Random(seed)
    keys = cluster.folder / "keys"
    schema = load_schema(cluster.folder / "schema.toml")
    generator = Generator(rng, schema.hash, schema.table("customers").stored_columns)
    if target == "server":
        server_public = load_public_key(keys / "server0.key")
        roles = [(load_keypair(keys / "alice.key_secret"), CLIENT_ACTIONS),
                 (load_keypair(keys / "server1.key_secret"), PEER_ACTIONS)]
        address, limit = cluster.listen[0], MAX_FRAME_BYTES
        processes = lambda: [cluster.servers[0], cluster.servers[1]]  # noqa: E731
    else:
        server_public = load_public_key(keys / "dealer.key")
        roles = [(load_keypair(keys / "server0.key_secret"), DEALER_ACTIONS)]
        address = load_dealer_config(cluster.folder / "dealer.toml").listen
        limit = MAX_REQUEST_BYTES
        processes = lambda: [cluster.dealer]  # noqa: E731
    tally = Tally()
    for role_keys, actions in roles:
        client = Client(role_keys, server_public, address, wait_s)
        try:
            if target == "dealer":  # a session, so that 'get' requests reach the kinds
                client.request(generator.mutate({"action": "open", "job": generator.job_ids[0]},
                                                [])[:1])
            plan = [action for action in actions for _ in range(per_handler)]
            rng.shuffle(plan)
            for action in plan:
                frames = generator.message(action)
                answered = all(len(frame) + CURVE_OVERHEAD <= limit for frame in frames)
                before = tally.unanswered
                _count(tally, client.request(frames, None if answered else DROP_WAIT_S),
                       expected=answered)
                if tally.unanswered > before and len(tally.unanswered_examples) < 5:
                    tally.unanswered_examples.append(repr([f[:300] for f in frames])[:600])
                tally.per_handler[action] = tally.per_handler.get(action, 0) + 1
                tally.deaths += sum(p.poll() is not None for p in processes())
                if tally.deaths:
                    return tally
            for _ in range(oversize):
                _count(tally, client.request(_oversize(limit), DROP_WAIT_S), expected=False)
        finally:
            client.close()
    return tally


def _count(tally: Tally, reply: dict | None, expected: bool) -> None:
    tally.sent += 1
    if reply is None:
        if expected:
            tally.unanswered += 1
        else:
            tally.dropped += 1
    elif reply.get("ok"):
        tally.ok += 1
    else:
        tally.refused += 1


def customers_csv(path: Path, rows: int) -> list[int]:
    """A customers file (the tests' SCHEMA); returns the ages."""
    ages = [18 + (7 * i) % 60 for i in range(rows)]
    path.write_text("id,age,income,member,region\n" + "".join(
        f"{i},{age},{i * 10.5},{'yes' if i % 2 else 'no'},{['north', 'south'][i % 2]}\n"
        for i, age in enumerate(ages)))
    return ages


def valid_job_is_right(cluster: LocalCluster, folder: Path) -> bool:
    """Upload a table, run a statistics job, and compare with the plaintext."""
    ages = customers_csv(folder / "customers.csv", 200)
    alice = twofold.Client(cluster.owner_config("alice"))  # the owner, and the recipient
    alice.withdraw("customers")  # the fuzzing may have begun to, as alice may
    alice.upload(folder / "customers.csv", "customers", cluster.folder / "schema.toml")
    values = alice.run(STATISTICS, timeout_s=300).data["values"]
    age = values["customers.age"]
    return (values["count"] == len(ages) and age["sum"] == sum(ages)
            and age["min"] == min(ages) and age["max"] == max(ages)
            and abs(age["variance"] - np.var(ages)) < 1e-6 * np.var(ages))
