"""`twofold server run`: one compute server's long-running process.

It listens on one CurveZMQ service socket whose ZAP handler admits only the owners in its
registry and the peer server. Owners upload tables there; the peer asks there whether this
server holds the same upload. A table version becomes ready (usable) only when both servers
hold it durably with the same upload id, table, row count, schema hash and content digest.
"""

from __future__ import annotations

import asyncio
import logging

import zmq
import zmq.asyncio

from mpc import wire
from mpc.curve import KeyAuthenticator, make_server_socket
from owners.schema import Schema, load_schema
from servers.config import ServerConfig
from mpc.rpc import ServiceClient, ServiceError
from servers.storage import Storage, StagedUpload, UploadRecord

log = logging.getLogger("twofold.server")


class RequestError(Exception):
    """A refused request; the message goes back to the client."""


class Server:
    def __init__(self, config: ServerConfig):
        self.config = config
        self.party = config.endpoints.party_id
        self.schema: Schema = load_schema(config.schema_path)
        self.storage = Storage(config.data_dir)
        self.staged: dict[str, StagedUpload] = {}
        self.address: str | None = None
        self._tasks: set[asyncio.Task] = set()

    # ---- the service loop ------------------------------------------------------------------

    async def serve(self, ready: asyncio.Event | None = None) -> None:
        context = zmq.asyncio.Context()
        names = {key: f"owner:{name}" for name, key in self.config.owners.items()}
        names[self.config.endpoints.peer_public] = f"server{1 - self.party}"
        authenticator = KeyAuthenticator(context, names)
        authenticator.start()
        self.socket = context.socket(zmq.ROUTER)
        self.socket.linger = 0
        make_server_socket(self.socket, self.config.endpoints.keys)
        self.socket.bind(self.config.listen)
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.peer = ServiceClient(context, self.config.endpoints.keys,
                                  self.config.endpoints.peer_public,
                                  self.config.peer_service_address, f"server {1 - self.party}",
                                  self.config.endpoints.timeout_s)
        if ready is not None:
            ready.set()
        try:
            while True:
                frames = await self.socket.recv_multipart(copy=False)
                identity, request = frames[0].bytes, frames[1:]
                client = request[0].get("User-Id")
                header, arrays = wire.decode(request)
                if header.get("action") == "activate":  # waits for the peer: run aside
                    task = asyncio.create_task(self._reply(identity, client, header, arrays))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                else:
                    await self._reply(identity, client, header, arrays)
        finally:
            self.peer.close()
            authenticator.stop()
            self.socket.close(0)
            context.term()
            self.storage.close()

    async def _reply(self, identity: bytes, client: str, header: dict, arrays) -> None:
        try:
            response = await self._dispatch(client, header, arrays)
            reply = {"ok": True, **response}
        except (RequestError, ServiceError, ValueError, KeyError, TypeError) as error:
            log.warning("refused %s from %s: %s", header.get("action"), client, error)
            reply = {"ok": False, "error": str(error)}
        await self.socket.send_multipart([identity, *wire.encode(reply)], copy=False)

    async def _dispatch(self, client: str, header: dict, arrays) -> dict:
        action = header.get("action")
        if client.startswith("server"):
            if action != "peer_check":
                raise RequestError(f"{client} may only confirm uploads")
            return {"status": self._peer_check(UploadRecord.from_message(header["record"]))}
        owner = client.removeprefix("owner:")
        if action == "begin":
            return self._begin(owner, header)
        if action == "chunk":
            self._owned_staged(owner, header["upload_id"]).append(header["start"], arrays)
            return {}
        if action == "commit":
            return self._commit(owner, header["upload_id"])
        if action == "activate":
            return await self._activate(owner, header["upload_id"])
        if action == "status":
            current = self.storage.current(header["table"])
            return {"current": current.as_message() if current else None}
        raise RequestError(f"unknown action {action!r}")

    # ---- uploads ---------------------------------------------------------------------------

    def _begin(self, owner: str, header: dict) -> dict:
        table = self.schema.table(header["table"])
        if table.owner != owner:
            raise RequestError(f"table {table.name} belongs to {table.owner}, not {owner}")
        if header["schema_hash"] != self.schema.hash:
            raise RequestError("the owner's schema differs from the servers' schema")
        if list(header["columns"]) != table.stored_columns:
            raise RequestError(f"columns {header['columns']} do not match table {table.name}")
        rows = header["rows"]
        if table.rows is not None and rows != table.rows:
            raise RequestError(f"{rows} rows, the schema fixes {table.rows} for {table.name}")
        record = UploadRecord(header["upload_id"], table.name, owner, rows, self.schema.hash,
                              header["digest"], tuple(table.stored_columns))
        existing = self.storage.lookup(record.upload_id)
        if existing is not None:
            if existing.same_content(record) and existing.state != "rejected":
                return {"status": "exists"}
            raise RequestError(f"upload id {record.upload_id} was already used for other content")
        old = self.staged.pop(record.upload_id, None)
        if old is not None:  # a retried upload starts over
            old.abandon()
        self.staged[record.upload_id] = self.storage.stage(record)
        return {"status": "send"}

    def _owned_staged(self, owner: str, upload_id: str) -> StagedUpload:
        staged = self.staged.get(upload_id)
        if staged is None or staged.record.owner != owner:
            raise RequestError(f"no upload {upload_id} in progress for {owner}")
        return staged

    def _commit(self, owner: str, upload_id: str) -> dict:
        staged = self._owned_staged(owner, upload_id)
        self.storage.commit(staged)
        del self.staged[upload_id]
        return {"status": "stored"}

    async def _activate(self, owner: str, upload_id: str) -> dict:
        record = self.storage.lookup(upload_id)
        if record is None or record.owner != owner:
            raise RequestError(f"server {self.party} holds no upload {upload_id} from {owner}")
        if record.state == "rejected":
            raise RequestError(f"upload {upload_id} was refused: the servers' copies differ")
        if record.state == "ready":
            return {"status": "ready"}
        response, _ = await self.peer.call({"action": "peer_check",
                                            "record": record.as_message()})
        status = response["status"]
        if status == "missing":
            raise RequestError(f"server {1 - self.party} does not hold upload {upload_id} yet")
        if status == "mismatch":
            self.storage.set_state(upload_id, "rejected")
            raise RequestError(f"servers 0 and 1 received different metadata for upload "
                               f"{upload_id}; both refused it")
        self.storage.set_state(upload_id, "ready")
        return {"status": "ready"}

    def _peer_check(self, theirs: UploadRecord) -> str:
        mine = self.storage.lookup(theirs.upload_id)
        if mine is None:
            return "missing"
        if mine.state == "rejected" or not mine.same_content(theirs):
            self.storage.set_state(mine.upload_id, "rejected")
            return "mismatch"
        if mine.state != "ready":  # both hold it durably: usable (a repeat changes nothing)
            self.storage.set_state(mine.upload_id, "ready")
        return "match"

