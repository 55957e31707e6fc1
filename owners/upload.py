"""An owner's upload: share every encoded column with the CSPRNG and send share p to server p.

The upload id defaults to a keyed digest of the encoded table, so running the same upload twice
is a no-op and changed data is a new version. The digest is an HMAC under a key derived from the
owner's secret key: servers can compare digests without learning anything about the data.

The masks are an AES-CTR stream keyed by the owner's secret, the upload id and the digest, so
sending an upload again reproduces exactly the same shares: a retry after any partial failure
(one server committed, the other did not) completes the upload on the server that lacks it with
the share that matches the other server's. A different content under the same id would need a
different digest, which the servers refuse, so no mask ever covers two different values.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from twofold.mpc.actions import ACTIVATE, BEGIN, CHUNK, COMMIT
from twofold.mpc.curve import KeyPair
from twofold.mpc.prg import Prg
from twofold.mpc.rpc import ServerAddress, ServiceError, each, service_clients
from twofold.mpc.sharing import split
from twofold.owners.policy import Policy
from twofold.owners.prepare import PreparedTable
from twofold.owners.schema import Schema

CHUNK_ROWS = 1 << 17  # 1 MiB frames, below the servers' MAX_FRAME_BYTES
CHECK_POLL_S = 0.05  # how often an owner asks again while the servers check its upload


def owner_secret(keys: KeyPair, purpose: bytes) -> bytes:
    """A key for one purpose, derived from the owner's CurveZMQ secret key."""
    return hashlib.sha256(b"twofold/" + purpose + b"/" + keys.secret).digest()


def source_digest(data, where: str | None, pad_to: int | None) -> bytes:
    """A digest of what the owner asked to upload: a file's bytes or a DataFrame's cells
    (pandas' stable row hashes and the column names), with --where and --pad-to."""
    digest = hashlib.sha256(repr((where, pad_to)).encode())
    if isinstance(data, pd.DataFrame):
        digest.update(repr(list(data.columns)).encode())
        digest.update(pd.util.hash_pandas_object(data, index=False).to_numpy().tobytes())
    else:
        digest.update(Path(data).read_bytes())
    return digest.digest()


def dummy_prg(keys: KeyPair, schema: Schema, table: str, source: bytes) -> Prg:
    """Padding keys drawn from a stream fixed by the owner's secret and the data (a
    source_digest), so that the same data always encodes to the same table (and the same
    upload id)."""
    seed = hmac.new(owner_secret(keys, b"padding"), schema.hash.encode() + table.encode()
                    + source, hashlib.sha256).digest()
    return Prg(seed[:16])


def share_masks(keys: KeyPair, schema: Schema, table: str, upload_id: str, digest: str,
                columns: int) -> list[Prg]:
    """One mask stream per column, fixed by the owner's secret and the upload's identity."""
    seed = hmac.new(owner_secret(keys, b"shares"),
                    f"{schema.hash}/{table}/{upload_id}/{digest}".encode(),
                    hashlib.sha256).digest()
    return [Prg(seed[:16], stream_id=column) for column in range(columns)]


def content_digest(keys: KeyPair, schema: Schema, prepared: PreparedTable,
                   policy: Policy) -> str:
    """Covers the policy too: the same data under new rules is a new version."""
    mac = hmac.new(owner_secret(keys, b"digest"), digestmod=hashlib.sha256)
    mac.update(f"{schema.hash}/{prepared.table.name}/{prepared.rows}".encode())
    mac.update(policy.to_json().encode())
    for name, values in prepared.columns.items():
        mac.update(name.encode())
        mac.update(np.ascontiguousarray(values).data.cast("B"))
    return mac.hexdigest()


@dataclass
class UploadResult:
    upload_id: str
    rows: int
    real_rows: int
    statuses: list[str]  # per server: "send" (uploaded now) or "exists" (already held)
    was_live: bool  # the upload already was its table's live version before this run
    bytes_sent: list[int]
    requests: list[int]
    check_s: float = 0.0  # activation on server 0, the servers' check of the values included


async def upload(prepared: PreparedTable, schema: Schema, keys: KeyPair,
                 servers: tuple[ServerAddress, ServerAddress], *, upload_id: str | None = None,
                 timeout_s: float = 60.0, progress=None,
                 policy: Policy | None = None, check_wait_s: float = 600.0) -> UploadResult:
    """Send the table to both servers, then make it ready once both have checked its values
    (waiting up to check_wait_s: a check waits for the job running before it). `progress(rows)`
    is called as rows go out; `policy` holds the owner's analysis rules (default:
    owners/policy.py's, with the owner alone as recipient)."""
    policy = policy or Policy(recipients=(prepared.table.owner,))
    digest = content_digest(keys, schema, prepared, policy)
    upload_id = upload_id or digest[:32]
    names = list(prepared.columns)
    async with service_clients(keys, servers, timeout_s) as clients:
        begin = {"action": BEGIN, "upload_id": upload_id, "table": prepared.table.name,
                 "schema_hash": schema.hash, "rows": prepared.rows, "columns": names,
                 "digest": digest, "policy": policy.to_json()}
        replies = await each(client.call(begin) for client in clients)
        statuses = [reply["status"] for reply, _ in replies]
        sending = [client for client, status in zip(clients, statuses, strict=True)
                   if status == "send"]
        masks = share_masks(keys, schema, prepared.table.name, upload_id, digest, len(names))
        for start in range(0, prepared.rows, CHUNK_ROWS):
            chunk = [values[start:start + CHUNK_ROWS] for values in prepared.columns.values()]
            shares = [split(values, mask) for values, mask in zip(chunk, masks, strict=True)]
            await each(client.call({"action": CHUNK, "upload_id": upload_id, "start": start},
                                   [pair[clients.index(client)] for pair in shares])
                       for client in sending)
            if progress is not None:
                progress(len(chunk[0]))
        await each(client.call({"action": COMMIT, "upload_id": upload_id})
                   for client in sending)
        # the first activation makes the upload live on both, once both servers have
        # checked its values; the second confirms it
        started = time.perf_counter()
        first, checked = await _activate(clients[0], upload_id, check_wait_s)
        check_s = time.perf_counter() - started
        await _activate(clients[1], upload_id, check_wait_s)
        return UploadResult(upload_id, prepared.rows, prepared.real_rows, statuses,
                            bool(first["was_live"]) and not checked,
                            [c.bytes_sent for c in clients], [c.requests for c in clients],
                            check_s)


async def _activate(client, upload_id: str, wait_s: float) -> tuple[dict, bool]:
    """Activation on one server, asked again while the servers check the upload's values:
    its final reply, and whether a check ran meanwhile. A check that failed after this run
    asked for it ends the run (a failure reported at the first ask is an earlier run's, and
    that ask checks again)."""
    deadline = time.monotonic() + wait_s
    checked = False
    while True:
        reply, _ = await client.call({"action": ACTIVATE, "upload_id": upload_id})
        if reply.get("status") != "checking":
            return reply, checked
        if checked and reply.get("failed"):
            raise ServiceError(f"the servers could not check upload {upload_id} "
                               f"({str(reply['failed'])[:300]}); it is not live: run the same "
                               "upload again")
        checked = True
        if time.monotonic() > deadline:
            raise ServiceError(f"the servers have not finished checking upload {upload_id} "
                               f"within {wait_s:g} s (jobs may be running); run the same "
                               "upload again later to complete it")
        await asyncio.sleep(CHECK_POLL_S)
