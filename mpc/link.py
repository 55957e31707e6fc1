"""The link between server 0 and server 1: one CurveZMQ PAIR socket, counted and checked.

The socket carries independent message streams (channels): "online" for the protocols, and
the streams in which the servers make correlated randomness between themselves (OT mode).
Once there is more than one channel, one reader task takes every message off the socket and
queues it for its channel, so a background producer can talk to its peer while the online
protocol runs, without either ever reading the other's messages (with the online channel
alone, the protocol reads the socket itself). Every message carries the job id, its channel
and a per-channel, per-direction sequence number; the receiver checks all three, so a stale
or foreign message stops the run instead of corrupting it. Every receive has a timeout, and a
party that fails sends an abort message so that its peer fails fast with the reason instead of
waiting out its timeout.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import numpy as np
import zmq
import zmq.asyncio

from twofold.mpc import wire
from twofold.mpc.accounting import Accounting
from twofold.mpc.curve import KeyAuthenticator, KeyPair, make_client_socket, make_server_socket
from twofold.mpc.errors import (
    JobCancelled,
    MpcError,
    PeerAborted,
    PeerTimeout,
    ProtocolMismatch,
)

DEFAULT_TIMEOUT_S = 60.0
MAX_FRAME_BYTES = 1 << 32  # one array from the peer (4 GiB); a larger frame drops the link
ABORT_WAIT_S = 1.0
ONLINE = "online"
CHANNELS = (ONLINE, "ot-correlate", "ot-extend-0", "ot-extend-1")  # no other is accepted


async def send_within(socket: zmq.asyncio.Socket, frames: list, timeout_s: float,
                      failure: str) -> None:
    """Send, or raise PeerTimeout(failure): a socket whose peer is gone blocks on send.
    (asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation.)"""
    sending = _future(socket.send_multipart(frames, copy=False))
    sending.add_done_callback(_settled)
    try:
        async with asyncio.timeout(timeout_s):
            await sending
    except TimeoutError:
        raise PeerTimeout(failure) from None


class StopSignal:
    """Asks a job (or a preprocessing session) that runs in another thread's event loop to
    stop. set() may be called from any thread: the job's link raises JobCancelled at its next
    message, and a wait for the peer already under way ends at once (a peer that is down
    would otherwise hold the job, and whatever is queued behind it, for the link's timeout)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._set = False
        self.reason = ""  # why, in words, when not by its submitter's cancel
        self._listeners: dict[object, tuple[asyncio.AbstractEventLoop, Callable[[], None]]] = {}

    def stop(self, reason: str) -> None:
        """set(), with the reason the job's error gives (the first reason counts)."""
        with self._lock:
            self.reason = self.reason or reason
        self.set()

    def set(self) -> None:
        with self._lock:
            self._set = True
            listeners = list(self._listeners.values())
        for loop, callback in listeners:
            try:
                loop.call_soon_threadsafe(callback)
            except RuntimeError:  # that loop has closed: nothing waits there any more
                pass

    def is_set(self) -> bool:
        return self._set

    def listen(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run callback in the calling event loop once set() is called (from then on, not
        for an earlier set(): check is_set() first). Returns what stops listening."""
        key, loop = object(), asyncio.get_running_loop()
        with self._lock:
            self._listeners[key] = (loop, callback)

        def stop_listening() -> None:
            with self._lock:
                self._listeners.pop(key, None)
        return stop_listening


def _future(sending: Awaitable) -> asyncio.Future:
    """A send of a zmq.asyncio socket: its stubs say Awaitable, it is an asyncio Future."""
    return cast(asyncio.Future, sending)


def _settled(future: asyncio.Future) -> None:
    """Mark a send's error as seen: a send abandoned by a cancelled task (its job over) may
    fail later, when its socket closes, and nobody is left to read that error."""
    if not future.cancelled():
        future.exception()


class _Transport:
    """The socket shared by all channels, and the reader that sorts incoming messages.

    While the online channel is the only one (always with a dealer), the protocol reads the
    socket itself: a reader task would add a hop through the event loop to every round, and
    training is bound by rounds (docs/mpc.md, "Measurements behind design choices"). The first
    other channel (OT mode, opened before any protocol runs) starts the reader task, which from
    then on takes every message off the socket and queues it for its channel."""

    def __init__(self, socket: zmq.asyncio.Socket, party_id: int, job_id: str,
                 accounting: Accounting, timeout_s: float, cancel: StopSignal | None):
        self.socket = socket
        self.party_id = party_id
        self.peer_id = 1 - party_id
        self.job_id = job_id
        self.accounting = accounting
        self.timeout_s = timeout_s
        self.cancel = cancel  # set from another thread to stop the job
        self._waiting: set[asyncio.Task] = set()  # tasks now waiting for the peer
        self._woken: set[asyncio.Task] = set()  # of those, the ones this link cancelled
        self._stop_listening = cancel.listen(self._wake) if cancel is not None else None
        self.queues: dict[str, asyncio.Queue] = {name: asyncio.Queue() for name in CHANNELS}
        self.failure: MpcError | None = None
        self.shared = False  # True once a channel besides the online one is open
        self._reader: asyncio.Task | None = None

    def lost(self, what: str) -> str:
        return (f"server {self.party_id}: {what} server {self.peer_id} within "
                f"{self.timeout_s:g} s (job {self.job_id}, stage {self.accounting.current}); "
                "the peer is down or unreachable")

    def cancelled(self) -> JobCancelled:
        return JobCancelled(f"server {self.party_id}: job {self.job_id} was cancelled")

    def _wake(self) -> None:
        """(In this link's loop, once cancel is set.) Ends every wait for the peer now."""
        for task in self._waiting - self._woken:
            self._woken.add(task)
            task.cancel()

    @contextmanager
    def waiting_for_peer(self):
        """Around an await on the peer: raises JobCancelled if cancel is set, before or
        while it waits."""
        if self.cancel is not None and self.cancel.is_set():
            raise self.cancelled()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("waiting for the peer happens in a task")
        self._waiting.add(task)
        try:
            yield
        except asyncio.CancelledError:
            if task not in self._woken:  # somebody else's cancellation: theirs to handle
                raise
            task.uncancel()
            raise self.cancelled() from None
        finally:
            self._waiting.discard(task)
            self._woken.discard(task)

    async def stop(self) -> None:
        if self._stop_listening is not None:
            self._stop_listening()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    def _fail(self, error: MpcError) -> None:
        self.failure = error
        for queue in self.queues.values():
            queue.put_nowait(None)  # wakes a waiting receiver, which raises self.failure

    async def _receive(self) -> tuple[str, dict, list[np.ndarray]] | None:
        """The next message off the socket and its channel, or None after failing the link
        (unreadable, an abort, or an unknown channel)."""
        try:
            frames = await self.socket.recv_multipart(copy=False)
            header, arrays = wire.decode(frames)
        except (zmq.ZMQError, wire.WireError) as error:
            self._fail(ProtocolMismatch(f"server {self.party_id}: unreadable message from "
                                        f"server {self.peer_id}: {error}"))
            return None
        if header.get("kind") == "abort":
            self._fail(PeerAborted(f"server {self.peer_id} stopped job {header.get('job')}: "
                                   f"{header.get('reason', 'no reason given')}"))
            return None
        channel = header.get("channel", ONLINE)
        if channel not in self.queues or (channel != ONLINE and not self.shared):
            self._fail(ProtocolMismatch(f"server {self.party_id}: message on unknown "
                                        f"channel {channel!r} from server {self.peer_id}"))
            return None
        return channel, header, arrays

    async def _read(self) -> None:
        while (received := await self._receive()) is not None:
            channel, header, arrays = received
            self.queues[channel].put_nowait((header, arrays))

    async def next(self, channel: str) -> tuple[dict, list[np.ndarray]]:
        if self.failure is not None:
            raise self.failure
        if self.shared and self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())
        try:
            with self.waiting_for_peer():
                async with asyncio.timeout(self.timeout_s):
                    if self.shared:
                        item = await self.queues[channel].get()
                    else:
                        received = await self._receive()
                        item = None if received is None else received[1:]
        except TimeoutError:
            raise PeerTimeout(self.lost("no message from")) from None
        if item is None:  # the link failed (_fail), which says why
            raise self.failure or ProtocolMismatch(f"server {self.party_id}: the link failed")
        return item


class Channel:
    """One message stream to the other server, with its own sequence numbers. Online
    messages count rounds; the others are offline traffic (correlated randomness)."""

    def __init__(self, transport: _Transport, name: str):
        self.transport = transport
        self.name = name
        self.party_id = transport.party_id
        self.peer_id = transport.peer_id
        self.job_id = transport.job_id
        self._send_seq = 0
        self._recv_seq = 0
        self.bytes_sent = 0

    @property
    def online(self) -> bool:
        return self.name == ONLINE

    async def _send_frames(self, *arrays: np.ndarray) -> None:
        transport = self.transport
        header = {"kind": "data", "job": self.job_id, "channel": self.name, "seq": self._send_seq}
        frames = wire.encode(header, arrays)
        self._send_seq += 1
        self.bytes_sent += wire.message_bytes(frames)
        transport.accounting.record_send(wire.message_bytes(frames), self.name)
        with transport.waiting_for_peer():
            await send_within(transport.socket, frames, transport.timeout_s,
                              transport.lost("could not send to"))

    async def send(self, *arrays: np.ndarray) -> None:
        """One-way message to the peer (one round)."""
        await self._send_frames(*arrays)
        if self.online:
            self.transport.accounting.record_round()

    async def recv(self, expect=None) -> list[np.ndarray]:
        """The peer's next message on this channel (one round). Arrays are read-only views.
        `expect`: the (dtype, shape) of each array, checked (callers that index by them)."""
        header, arrays = await self.transport.next(self.name)
        if (header.get("kind") != "data" or header.get("job") != self.job_id
                or header.get("seq") != self._recv_seq):
            raise ProtocolMismatch(
                f"server {self.party_id}: got job {header.get('job')!r} {self.name} message "
                f"#{header.get('seq')}, expected job {self.job_id!r} message #{self._recv_seq}")
        self._recv_seq += 1
        if self.online:
            self.transport.accounting.record_round()
        if expect is not None:
            wanted = [(np.dtype(dtype), tuple(shape)) for dtype, shape in expect]
            got = [(a.dtype, a.shape) for a in arrays]
            if wanted != got:
                raise ProtocolMismatch(
                    f"server {self.party_id}: expected arrays {wanted} on {self.name}, server "
                    f"{self.peer_id} sent {got}")
        return arrays

    async def exchange(self, *arrays: np.ndarray, expect=None) -> list[np.ndarray]:
        """Both parties send at once and receive the other's arrays (one round). The peer's
        must have the dtypes and shapes of ours, or `expect`: a list of (dtype, shape)."""
        await self._send_frames(*arrays)
        return await self.recv([(a.dtype, a.shape) for a in arrays] if expect is None
                               else expect)


class PeerLink(Channel):
    """The online channel of a job's link; it also opens the other channels and ends the link."""

    def __init__(self, socket: zmq.asyncio.Socket, party_id: int, job_id: str,
                 accounting: Accounting, timeout_s: float = DEFAULT_TIMEOUT_S,
                 cancel: StopSignal | None = None):
        super().__init__(_Transport(socket, party_id, job_id, accounting, timeout_s, cancel),
                         ONLINE)
        self.socket = socket
        self.accounting = accounting
        self.timeout_s = timeout_s
        self._channels: dict[str, Channel] = {}

    def channel(self, name: str) -> Channel:
        """The stream `name` (one of CHANNELS other than the online one)."""
        if name not in CHANNELS or name == ONLINE:
            raise ValueError(f"no channel {name!r}")
        self.transport.shared = True
        return self._channels.setdefault(name, Channel(self.transport, name))

    async def finish(self) -> None:
        """Closing handshake: PAIR delivers in order, so once the peer's goodbye arrives, every
        online message this side sent has been received and the socket may close without
        linger. Offline channels need no handshake: both sides stop producing at the end."""
        frames = wire.encode({"kind": "bye", "job": self.job_id, "channel": ONLINE,
                              "seq": self._send_seq})
        await send_within(self.socket, frames, self.timeout_s,
                          self.transport.lost("could not say goodbye to"))
        try:
            header, _ = await self.transport.next(ONLINE)
        except PeerTimeout:
            raise PeerTimeout(f"server {self.party_id}: server {self.peer_id} did not finish "
                              f"job {self.job_id} within {self.timeout_s:g} s") from None
        if header.get("kind") != "bye" or header.get("seq") != self._recv_seq:
            raise ProtocolMismatch(f"server {self.party_id}: job {self.job_id} ended with "
                                   f"unread messages from server {self.peer_id}")

    async def abort(self, reason: str) -> None:
        """Tell the peer this job is over (best effort, never blocks for long: behind other
        pending sends to a peer that stopped reading, even a NOBLOCK send would wait)."""
        if self.socket.closed:  # pyzmq would leave an orphaned future failing later
            return
        frames = wire.encode({"kind": "abort", "job": self.job_id, "reason": reason[:500]})
        sending = _future(self.socket.send_multipart(frames, flags=zmq.NOBLOCK))
        sending.add_done_callback(_settled)
        try:
            async with asyncio.timeout(ABORT_WAIT_S):
                await sending
            # queued behind offline data, the abort must survive the socket's close
            self.socket.linger = int(ABORT_WAIT_S * 1000)
        except (zmq.ZMQError, TimeoutError):
            pass

    async def close(self) -> None:
        """Stop reading (before the socket closes)."""
        await self.transport.stop()


@dataclass
class Connection:
    """A socket and, on the listening side, the ZAP handler that guards it."""

    socket: zmq.asyncio.Socket
    authenticator: KeyAuthenticator | None = None

    def close(self) -> None:
        """Close now; only a job that aborted lingers (briefly) to deliver its abort."""
        if self.authenticator is not None:
            self.authenticator.stop()
        self.socket.close()


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
    except TimeoutError:
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
