"""Request/reply over CurveZMQ between a client (an owner, or the peer server) and a server's
service socket: one msgpack header plus array frames each way, with a timeout."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass

import numpy as np
import zmq
import zmq.asyncio

from twofold.mpc import wire
from twofold.mpc.actions import HELLO
from twofold.mpc.curve import KeyPair, make_client_socket
from twofold.mpc.errors import MpcError, PeerTimeout
from twofold.mpc.link import send_within

HANDSHAKE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ServerAddress:
    """Where a server's service socket listens, and the public key a client pins for it."""

    address: str
    public_key: bytes


class ServiceError(MpcError):
    """A server refused a request or did not answer; the message says which and why."""


class ServiceUnreachable(ServiceError):
    """A server did not answer at all (down, unreachable, or refusing this client's key)."""


class ServiceClient:
    """A DEALER socket to one server's service address; one request at a time.

    The first call is preceded by a hello with a short wait (HANDSHAKE_TIMEOUT_S): a server
    that refuses this client's key never answers at all (CurveZMQ drops the connection), so a
    key that is not registered, a wrong address or a wrong server key fails within seconds
    and says what to check. Every request carries an id the server echoes, so a late reply to
    a request given up on is dropped instead of answering the next one."""

    def __init__(self, context: zmq.asyncio.Context, keys: KeyPair, server_public: bytes,
                 address: str, name: str, timeout_s: float,
                 handshake_s: float = HANDSHAKE_TIMEOUT_S):
        self.name = name
        self.address = address
        self.timeout_s = timeout_s
        self.handshake_s = min(timeout_s, handshake_s)
        self.bytes_sent = 0
        self.requests = 0
        self.socket = context.socket(zmq.DEALER)
        self.socket.linger = 0
        make_client_socket(self.socket, keys, server_public)
        self.socket.connect(address)
        self._lock = asyncio.Lock()
        self._next_id = 0
        self._greeted = False

    def _silent(self, timeout_s: float) -> str:
        return (f"{self.name} at {self.address} did not answer within {timeout_s:g} s; "
                "check that it runs, its address and its public key")

    def _no_handshake(self, timeout_s: float) -> str:
        return (f"{self.name} at {self.address} did not complete the handshake within "
                f"{timeout_s:g} s; check that your public key is registered on it, its address, "
                "that it runs, and its public key in your config")

    async def _exchange(self, header: dict, arrays, timeout_s: float, failure: str):
        request_id, self._next_id = self._next_id, self._next_id + 1
        frames = wire.encode({**header, "rid": request_id}, arrays)
        self.bytes_sent += wire.message_bytes(frames)
        self.requests += 1
        deadline = asyncio.get_running_loop().time() + timeout_s
        try:
            await send_within(self.socket, frames, timeout_s, failure)
            while True:
                left = deadline - asyncio.get_running_loop().time()
                reply = await asyncio.wait_for(self.socket.recv_multipart(copy=False),
                                               max(left, 0))
                response, arrays = wire.decode(reply)
                if response.get("rid") == request_id:
                    return response, arrays
        except (TimeoutError, PeerTimeout):
            raise ServiceUnreachable(failure) from None

    async def call(self, header: dict, arrays=()) -> tuple[dict, list[np.ndarray]]:
        async with self._lock:
            if not self._greeted:
                await self._exchange({"action": HELLO}, (), self.handshake_s,
                                     self._no_handshake(self.handshake_s))
                self._greeted = True
            response, arrays = await self._exchange(header, arrays, self.timeout_s,
                                                    self._silent(self.timeout_s))
        if not response.get("ok"):
            raise ServiceError(f"{self.name} refused: {response.get('error')}")
        return response, arrays

    def close(self) -> None:
        self.socket.close(0)


@asynccontextmanager
async def service_clients(keys: KeyPair, servers, timeout_s: float):
    """A ServiceClient to each server (server 0, then server 1) in one context."""
    context = zmq.asyncio.Context()
    clients = [ServiceClient(context, keys, server.public_key, server.address, f"server {p}",
                             timeout_s) for p, server in enumerate(servers)]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()
        context.term()


async def each(calls) -> list:
    """Await one call per server, all at once, and return their results; the first failure
    is raised only once every call has ended. Closing a socket under a call still pending
    lets pyzmq hand that call's frames to the next socket it opens, so no socket may close
    before its call is over."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
