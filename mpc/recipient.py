"""Revealing to an outside recipient: each server sends its share straight to the recipient,
who alone adds them up. Neither server ever holds the opened value.

The recipient listens with a CURVE server socket whose ZAP handler admits only the two servers'
keys; each server pins the recipient's public key. Both shares must name the same job and
output and have the same shapes, or the recipient refuses them.
"""

from __future__ import annotations

import asyncio

import numpy as np
import zmq
import zmq.asyncio

from mpc import wire
from mpc.curve import KeyAuthenticator, KeyPair, make_client_socket, make_server_socket
from mpc.errors import PeerTimeout, ProtocolMismatch
from mpc.link import DEFAULT_TIMEOUT_S, send_within

SERVER_NAMES = ("server0", "server1")


async def send_to_recipient(party_id: int, keys: KeyPair, recipient_public: bytes,
                            address: str, job_id: str, output: str, shares: list[np.ndarray],
                            timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """One server's half of the reveal: send its shares of `output` to the recipient."""
    context = zmq.asyncio.Context()
    socket = context.socket(zmq.DEALER)
    socket.linger = 0
    make_client_socket(socket, keys, recipient_public)
    socket.connect(address)
    try:
        unreachable = (f"server {party_id}: recipient at {address} did not acknowledge within "
                       f"{timeout_s:g} s; check its address and public key")
        await send_within(socket, wire.encode(
            {"job": job_id, "output": output, "party": party_id}, shares), timeout_s, unreachable)
        try:  # the acknowledgement proves delivery, so the socket may close without linger
            await asyncio.wait_for(socket.recv(), timeout_s)
        except asyncio.TimeoutError:
            raise PeerTimeout(unreachable) from None
    finally:
        socket.close(0)
        context.term()


class OutputReceiver:
    """The recipient's side: collects both servers' shares of one output and reconstructs."""

    def __init__(self, keys: KeyPair, server_publics: tuple[bytes, bytes],
                 address: str = "tcp://127.0.0.1:*"):
        self.keys = keys
        self.server_publics = server_publics
        self.context = zmq.asyncio.Context()
        self.authenticator = KeyAuthenticator(
            self.context, dict(zip(server_publics, SERVER_NAMES)))
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.linger = 0
        self.requested_address = address
        self.address: str | None = None

    def listen(self) -> str:
        """Start listening (inside the event loop); returns the bound address."""
        self.authenticator.start()
        make_server_socket(self.socket, self.keys)
        self.socket.bind(self.requested_address)
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        return self.address

    async def receive(self, job_id: str, output: str,
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> list[np.ndarray]:
        shares: dict[int, list[np.ndarray]] = {}
        while len(shares) < 2:
            try:
                frames = await asyncio.wait_for(self.socket.recv_multipart(copy=False), timeout_s)
            except asyncio.TimeoutError:
                missing = sorted({0, 1} - set(shares))
                raise PeerTimeout(f"recipient: no share of {output!r} from server(s) {missing} "
                                  f"within {timeout_s:g} s") from None
            identity, message = frames[0], frames[1:]
            party = SERVER_NAMES.index(message[0].get("User-Id"))
            header, arrays = wire.decode(message)
            if header.get("job") != job_id or header.get("output") != output:
                raise ProtocolMismatch(f"recipient: server {party} sent {header.get('output')!r}"
                                       f" of job {header.get('job')!r}, expected {output!r} of "
                                       f"job {job_id!r}")
            shares[party] = [array.copy() for array in arrays]
            await self.socket.send_multipart([identity.bytes, b"ok"])
        if [a.shape for a in shares[0]] != [a.shape for a in shares[1]]:
            raise ProtocolMismatch("recipient: the servers' shares have different shapes")
        return [first + second for first, second in zip(shares[0], shares[1])]

    def close(self) -> None:
        self.authenticator.stop()
        self.socket.close(0)
        self.context.term()

