"""Request/reply over CurveZMQ between a client (an owner, or the peer server) and a server's
service socket: one msgpack header plus array frames each way, with a timeout."""

from __future__ import annotations

import asyncio

import numpy as np
import zmq
import zmq.asyncio

from mpc import wire
from mpc.curve import KeyPair, make_client_socket
from mpc.errors import MpcError, PeerTimeout
from mpc.link import send_within


class ServiceError(MpcError):
    """A server refused a request or did not answer; the message says which and why."""


class ServiceClient:
    """A DEALER socket to one server's service address; one request at a time."""

    def __init__(self, context: zmq.asyncio.Context, keys: KeyPair, server_public: bytes,
                 address: str, name: str, timeout_s: float):
        self.name = name
        self.address = address
        self.timeout_s = timeout_s
        self.bytes_sent = 0
        self.requests = 0
        self.socket = context.socket(zmq.DEALER)
        self.socket.linger = 0
        make_client_socket(self.socket, keys, server_public)
        self.socket.connect(address)
        self._lock = asyncio.Lock()

    def _silent(self) -> str:
        return (f"{self.name} at {self.address} did not answer within {self.timeout_s:g} s; "
                "check that it runs, its address and its public key")

    async def call(self, header: dict, arrays=()) -> tuple[dict, list[np.ndarray]]:
        async with self._lock:
            frames = wire.encode(header, arrays)
            self.bytes_sent += wire.message_bytes(frames)
            self.requests += 1
            try:
                await send_within(self.socket, frames, self.timeout_s, self._silent())
                reply = await asyncio.wait_for(self.socket.recv_multipart(copy=False),
                                               self.timeout_s)
            except (asyncio.TimeoutError, PeerTimeout):
                raise ServiceError(self._silent()) from None
        response, arrays = wire.decode(reply)
        if not response.get("ok"):
            raise ServiceError(f"{self.name} refused: {response.get('error')}")
        return response, arrays

    def close(self) -> None:
        self.socket.close(0)
