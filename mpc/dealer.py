"""The dealer: a separate process that hands out correlated randomness (client-aided model).

Sessions: each server opens a session for a job id; the dealer draws fresh 16-byte keys K0 and
K1 from os.urandom for the session and gives K_p to server p only. A server may open a given job
id once, so a restarted server cannot be handed the same streams again; it must start a new job.

Requests: the server that needs correction k of a session asks for it with the correlation's
kind and parameters; the dealer refuses a k it has served before, recomputes both parties'
seed-derived parts and returns the correction. The dealer never learns any data: it sees only
correlation kinds and sizes.

DealerSource is the servers' side: it implements CorrelationSource, so protocols never know
where their randomness comes from; an OT-based generator between the servers could implement
the same interface.
"""

from __future__ import annotations

import asyncio
import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import zmq
import zmq.asyncio

from mpc import wire
from mpc.accounting import Accounting
from mpc.correlations import KINDS, CorrelationError
from mpc.curve import KeyAuthenticator, KeyPair, make_client_socket, make_server_socket
from mpc.errors import DealerError, PeerTimeout
from mpc.link import send_within
from mpc.prg import KEY_BYTES, Prg

log = logging.getLogger("twofold.dealer")
SERVER_NAMES = ("server0", "server1")
MAX_REQUEST_BYTES = 1 << 16  # requests are one header; a larger frame drops the sender


class CorrelationSource(ABC):
    """Correlated randomness, consumed in the same order by both servers."""

    @abstractmethod
    async def get(self, kind: str, **params):
        """The next correlation of the given kind, as this party's tuple of arrays."""

    async def beaver(self, shape):
        return await self.get("beaver", shape=list(np.atleast_1d(shape).tolist()))

    async def row_triples(self, rows: int, n: int):
        return await self.get("beaver_rows", rows=rows, n=n)

    async def and_triples(self, shape):
        return await self.get("and", shape=list(np.atleast_1d(shape).tolist()))

    async def matmul_triple(self, m: int, k: int, n: int):
        return await self.get("matmul", dims=[m, k, n])

    async def dabits(self, count: int):
        return await self.get("dabit", shape=[count])

    async def bit_triples(self, count: int):
        return await self.get("bitmul", shape=[count])

    async def edabits(self, shape):
        return await self.get("edabit", shape=list(np.atleast_1d(shape).tolist()))

    async def truncation_pairs(self, shape, frac_bits: int):
        return await self.get("trunc", shape=list(np.atleast_1d(shape).tolist()),
                              frac_bits=frac_bits)

    async def permutation_masks(self, n: int, columns: str, permuter: int):
        return await self.get("permute", n=n, columns=columns, permuter=permuter)


@dataclass
class _Session:
    keys: tuple[bytes, bytes]
    opened_by: set[int] = field(default_factory=set)
    served: set[int] = field(default_factory=set)
    closed_by: set[int] = field(default_factory=set)


class Dealer:
    """The dealer service on one ROUTER socket; only the two servers' keys get in."""

    def __init__(self, keys: KeyPair, server_publics: tuple[bytes, bytes], address: str):
        self.keys = keys
        self.server_publics = server_publics
        self.address = address
        self.sessions: dict[str, _Session] = {}
        self.elements_served = 0

    async def serve(self, ready: asyncio.Event | None = None) -> None:
        context = zmq.asyncio.Context()
        authenticator = KeyAuthenticator(
            context, {key: name for key, name in zip(self.server_publics, SERVER_NAMES)})
        authenticator.start()
        socket = context.socket(zmq.ROUTER)
        socket.linger = 0
        socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        socket.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_BYTES)
        make_server_socket(socket, self.keys)
        socket.bind(self.address)
        self.address = socket.getsockopt_string(zmq.LAST_ENDPOINT)
        if ready is not None:
            ready.set()
        try:
            while True:
                frames = await socket.recv_multipart(copy=False)
                identity, request = frames[0], frames[1:]
                party = SERVER_NAMES.index(request[0].get("User-Id"))
                reply = self._handle(party, request)
                try:
                    await socket.send_multipart([identity.bytes, *reply], copy=False)
                except zmq.ZMQError as error:  # the server left; serve the others
                    log.warning("could not answer %s: %s", SERVER_NAMES[party], error)
        finally:
            authenticator.stop()
            socket.close(0)
            context.term()

    def _handle(self, party: int, request) -> list:
        try:
            header, _ = wire.decode(request)
            action = header.get("action")
            if action == "open":
                return wire.encode({"ok": True}, [self._open(party, header["job"])])
            if action == "get":
                correction = self._correction(party, header)
                return wire.encode({"ok": True, "seq": header["seq"]}, correction)
            if action == "close":
                self._close(party, header.get("job"))
                return wire.encode({"ok": True})
            raise DealerError(f"unknown action {action!r}")
        except (DealerError, CorrelationError, wire.WireError, KeyError, TypeError) as error:
            log.warning("refused request from %s: %s", SERVER_NAMES[party], error)
            return wire.encode({"ok": False, "error": str(error)[:2000]})
        except Exception as error:  # a request no check foresaw: refuse it and keep serving
            log.exception("failed request from %s", SERVER_NAMES[party])
            return wire.encode({"ok": False, "error": f"{type(error).__name__}: {error}"[:2000]})

    def _open(self, party: int, job: str) -> np.ndarray:
        if not isinstance(job, str) or not job:
            raise DealerError("a session needs a job id")
        session = self.sessions.setdefault(
            job, _Session(keys=(os.urandom(KEY_BYTES), os.urandom(KEY_BYTES))))
        if party in session.opened_by:
            raise DealerError(
                f"job {job} was already opened by {SERVER_NAMES[party]}; "
                "correlations are never handed out twice: start a new job id")
        session.opened_by.add(party)
        return np.frombuffer(session.keys[party], dtype=np.uint8)

    def _close(self, party: int, job: str) -> None:
        session = self.sessions.get(job)
        if session is not None:
            session.closed_by.add(party)
            if session.closed_by == {0, 1}:
                del self.sessions[job]  # both done: forget the keys

    def _correction(self, party: int, header: dict) -> list[np.ndarray]:
        session = self.sessions.get(header.get("job"))
        if session is None or party not in session.opened_by:
            raise DealerError(f"no open session for job {header.get('job')!r}")
        seq, kind_name, params = header.get("seq"), header.get("kind"), header.get("params")
        kind = KINDS.get(kind_name)
        if kind is None or not isinstance(params, dict) or not isinstance(seq, int) or seq < 0:
            raise DealerError(f"malformed request for correlation {seq!r}")
        kind.validate(params)
        if kind.receiver(params) != party:
            raise DealerError(f"{SERVER_NAMES[party]} is not the receiver of this {kind_name}")
        if seq in session.served:
            raise DealerError(f"correlation {seq} of job {header['job']} was already served")
        session.served.add(seq)
        own = [kind.own(p, Prg(session.keys[p], seq), params) for p in (0, 1)]
        correction = kind.correction(own[0], own[1], params)
        self.elements_served += sum(array.size for array in correction)
        return correction


class DealerSource(CorrelationSource):
    """A server's view of the dealer: expands its own seeds, fetches its corrections."""

    def __init__(self, socket: zmq.asyncio.Socket, party_id: int, job_id: str,
                 accounting: Accounting, timeout_s: float):
        self.socket = socket
        self.party_id = party_id
        self.job_id = job_id
        self.accounting = accounting
        self.timeout_s = timeout_s
        self._key: bytes | None = None
        self._seq = 0

    def _unreachable(self) -> str:
        return (f"server {self.party_id}: no answer from the dealer within {self.timeout_s:g} s; "
                "check that it runs, its address and its public key")

    async def _call(self, header: dict) -> list[np.ndarray]:
        request = wire.encode({**header, "job": self.job_id})
        self.accounting.record_dealer_request(wire.message_bytes(request))
        try:
            await send_within(self.socket, request, self.timeout_s, self._unreachable())
        except PeerTimeout as error:
            raise DealerError(str(error)) from None
        try:
            frames = await asyncio.wait_for(
                self.socket.recv_multipart(copy=False), timeout=self.timeout_s)
        except asyncio.TimeoutError:
            raise DealerError(self._unreachable()) from None
        reply, arrays = wire.decode(frames)
        if not reply.get("ok"):
            raise DealerError(f"dealer refused server {self.party_id}: {reply.get('error')}")
        self.accounting.cost().dealer_bytes += wire.message_bytes(frames)
        return arrays

    async def open(self) -> None:
        with self.accounting.offline():
            (key,) = await self._call({"action": "open"})
        self._key = key.tobytes()

    async def close(self) -> None:
        await self._call({"action": "close"})

    async def get(self, kind: str, **params):
        if self._key is None:
            raise DealerError("dealer session not opened")
        spec = KINDS[kind]
        spec.validate(params)
        seq, self._seq = self._seq, self._seq + 1
        with self.accounting.offline():
            own = spec.own(self.party_id, Prg(self._key, seq), params)
            correction = []
            if spec.receiver(params) == self.party_id:
                correction = await self._call(
                    {"action": "get", "seq": seq, "kind": kind, "params": params})
            return spec.assemble(self.party_id, own, correction)


async def connect_dealer(context: zmq.asyncio.Context, keys: KeyPair, dealer_public: bytes,
                         address: str) -> zmq.asyncio.Socket:
    socket = context.socket(zmq.DEALER)
    socket.linger = 0
    make_client_socket(socket, keys, dealer_public)
    socket.connect(address)
    return socket
