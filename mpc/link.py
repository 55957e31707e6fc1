"""The link between server 0 and server 1: one CurveZMQ PAIR socket, counted and checked.

Every message carries the job id and a per-direction sequence number; the receiver checks both,
so a stale or foreign message stops the run instead of corrupting it. Every receive has a
timeout, and a party that fails sends an abort message so that its peer fails fast with the
reason instead of waiting out its timeout.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import numpy as np
import zmq
import zmq.asyncio

from mpc import wire
from mpc.accounting import Accounting
from mpc.curve import KeyAuthenticator, KeyPair, make_client_socket, make_server_socket
from mpc.errors import JobCancelled, PeerAborted, PeerTimeout, ProtocolMismatch

DEFAULT_TIMEOUT_S = 60.0
MAX_FRAME_BYTES = 1 << 32  # one array from the peer (4 GiB); a larger frame drops the link


async def send_within(socket: zmq.asyncio.Socket, frames: list, timeout_s: float,
                      failure: str) -> None:
    """Send, or raise PeerTimeout(failure): a socket whose peer is gone blocks on send."""
    try:
        await asyncio.wait_for(socket.send_multipart(frames, copy=False), timeout_s)
    except asyncio.TimeoutError:
        raise PeerTimeout(failure) from None


class PeerLink:
    """Sends and receives arrays to and from the other server for one job."""

    def __init__(self, socket: zmq.asyncio.Socket, party_id: int, job_id: str,
                 accounting: Accounting, timeout_s: float = DEFAULT_TIMEOUT_S,
                 cancel: threading.Event | None = None):
        self.socket = socket
        self.party_id = party_id
        self.peer_id = 1 - party_id
        self.job_id = job_id
        self.accounting = accounting
        self.timeout_s = timeout_s
        self._send_seq = 0
        self._recv_seq = 0
        self.cancel = cancel  # set from another thread to stop the job at its next message

    def _raise_if_aborted(self, header: dict) -> None:
        if header.get("kind") == "abort":
            raise PeerAborted(f"server {self.peer_id} stopped job {header.get('job')}: "
                              f"{header.get('reason', 'no reason given')}")

    def _lost(self, what: str) -> str:
        return (f"server {self.party_id}: {what} server {self.peer_id} within "
                f"{self.timeout_s:g} s (job {self.job_id}, stage {self.accounting.current}); "
                "the peer is down or unreachable")

    async def _send_frames(self, *arrays: np.ndarray) -> None:
        header = {"kind": "data", "job": self.job_id, "seq": self._send_seq}
        frames = wire.encode(header, arrays)
        self._send_seq += 1
        self.accounting.record_send(wire.message_bytes(frames))
        await send_within(self.socket, frames, self.timeout_s, self._lost("could not send to"))

    async def send(self, *arrays: np.ndarray) -> None:
        """One-way message to the peer (one round)."""
        await self._send_frames(*arrays)
        self.accounting.record_round()

    async def recv(self) -> list[np.ndarray]:
        """The peer's next message (one round). Arrays are read-only views of the frames."""
        if self.cancel is not None and self.cancel.is_set():
            raise JobCancelled(f"server {self.party_id}: job {self.job_id} was cancelled")
        try:
            frames = await asyncio.wait_for(
                self.socket.recv_multipart(copy=False), timeout=self.timeout_s)
        except asyncio.TimeoutError:
            raise PeerTimeout(self._lost("no message from")) from None
        header, arrays = wire.decode(frames)
        self._raise_if_aborted(header)
        if header.get("job") != self.job_id or header.get("seq") != self._recv_seq:
            raise ProtocolMismatch(
                f"server {self.party_id}: got job {header.get('job')!r} message "
                f"#{header.get('seq')}, expected job {self.job_id!r} message #{self._recv_seq}")
        self._recv_seq += 1
        self.accounting.record_round()
        return arrays

    async def exchange(self, *arrays: np.ndarray) -> list[np.ndarray]:
        """Both parties send at once and receive the other's arrays (one round)."""
        await self._send_frames(*arrays)
        received = await self.recv()
        mine = [(a.dtype, a.shape) for a in arrays]
        theirs = [(a.dtype, a.shape) for a in received]
        if mine != theirs:
            raise ProtocolMismatch(
                f"server {self.party_id}: exchanged arrays {mine}, server {self.peer_id} "
                f"sent {theirs}")
        return received

    async def finish(self) -> None:
        """Closing handshake: PAIR delivers in order, so once the peer's goodbye arrives, every
        message this side sent has been received and the socket may close without linger."""
        await send_within(self.socket, wire.encode(
            {"kind": "bye", "job": self.job_id, "seq": self._send_seq}), self.timeout_s,
            self._lost("could not say goodbye to"))
        try:
            frames = await asyncio.wait_for(self.socket.recv_multipart(), self.timeout_s)
        except asyncio.TimeoutError:
            raise PeerTimeout(f"server {self.party_id}: server {self.peer_id} did not finish "
                              f"job {self.job_id} within {self.timeout_s:g} s") from None
        header, _ = wire.decode(frames)
        self._raise_if_aborted(header)
        if header.get("kind") != "bye" or header.get("seq") != self._recv_seq:
            raise ProtocolMismatch(f"server {self.party_id}: job {self.job_id} ended with "
                                   f"unread messages from server {self.peer_id}")

    async def abort(self, reason: str) -> None:
        """Tell the peer this job is over (best effort, never blocks)."""
        frames = wire.encode({"kind": "abort", "job": self.job_id, "reason": reason[:500]})
        try:
            await self.socket.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            pass


@dataclass
class Connection:
    """A socket and, on the listening side, the ZAP handler that guards it."""

    socket: zmq.asyncio.Socket
    authenticator: KeyAuthenticator | None = None

    def close(self) -> None:
        if self.authenticator is not None:
            self.authenticator.stop()
        self.socket.close(0)


async def connect_peer(context: zmq.asyncio.Context, party_id: int, keys: KeyPair,
                       peer_public: bytes, address: str,
                       timeout_s: float = DEFAULT_TIMEOUT_S) -> Connection:
    """Server 0 listens on address, server 1 connects to it; returns the connected socket
    after a hello/ack, so a wrong key or address fails here with a clear error."""
    socket = context.socket(zmq.PAIR)
    socket.linger = 0
    socket.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
    connection = Connection(socket)
    if party_id == 0:
        connection.authenticator = KeyAuthenticator(context, {peer_public: "server1"})
        connection.authenticator.start()
        make_server_socket(socket, keys)
        socket.bind(address)
    else:
        make_client_socket(socket, keys, peer_public)
        socket.connect(address)
        await socket.send(b"hello")
    try:
        greeting = await asyncio.wait_for(socket.recv(), timeout=timeout_s)
    except asyncio.TimeoutError:
        connection.close()
        raise PeerTimeout(
            f"server {party_id}: no hello from server {1 - party_id} at {address} within "
            f"{timeout_s:g} s; check that it runs and that both sides pin the right public keys"
        ) from None
    if party_id == 0:
        await socket.send(b"ack")
    if greeting not in (b"hello", b"ack"):
        connection.close()
        raise ProtocolMismatch(f"server {party_id}: unexpected greeting from peer")
    return connection
