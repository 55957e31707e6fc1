"""The dealer: a separate process that hands out correlated randomness (client-aided model).

Sessions: each server opens a session for a job id; the dealer draws fresh 16-byte keys K0 and
K1 from os.urandom for the session and gives K_p to server p only. A server may open a given job
id once, so a restarted server cannot be handed the same streams again; it must start a new job.

Requests: the server that needs corrections asks for a batch of them in one message, each with
its number k, the correlation's kind and parameters; the dealer refuses a k it has served
before, recomputes both parties' seed-derived parts and returns the corrections. The dealer
never learns any data: it sees only correlation kinds and sizes.

DealerSource is the servers' side: a CorrelationSource, so protocols never know where their
randomness comes from (mpc.ot.source.OtSource is the other one).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field

import msgpack
import numpy as np
import zmq
import zmq.asyncio

from twofold.mpc import wire
from twofold.mpc.accounting import Accounting
from twofold.mpc.actions import CLOSE, GET, OPEN
from twofold.mpc.correlation_source import CorrelationSource, Request
from twofold.mpc.correlations import KINDS, MAX_ELEMENTS, CorrelationError
from twofold.mpc.correlations.row_masks import MaskRecord
from twofold.mpc.curve import KeyPair, make_client_socket
from twofold.mpc.errors import DealerError, PeerTimeout
from twofold.mpc.link import send_within
from twofold.mpc.prg import KEY_BYTES, Prg
from twofold.mpc.service import Action, Caller, Service, header_field, whole_header
from twofold.mpc.service import Request as ServiceRequest

log = logging.getLogger("twofold.dealer")
SERVER = "server"  # the role of the dealer's callers
SERVER_NAMES = ("server0", "server1")
MAX_REQUEST_BYTES = 1 << 16  # requests are one header; a larger frame drops the sender
MAX_BATCH = 256  # requests in one message
MAX_JOB_ELEMENTS = 1 << 40  # correlation elements (words, mostly) one job may ask for in all
REQUEST_ROOM = 3 * MAX_REQUEST_BYTES // 4  # requests' bytes in one message, header included


def _party(request: ServiceRequest) -> int:
    return SERVER_NAMES.index(request.caller.name)


@dataclass
class _Session:
    keys: tuple[bytes, bytes]
    opened_by: set[int] = field(default_factory=set)
    served: set[int] = field(default_factory=set)
    closed_by: set[int] = field(default_factory=set)
    elements: int = 0  # served so far, to both servers
    mask: MaskRecord | None = None  # the latest row mask: masked products read its rows


class Dealer(Service):
    """The dealer service on one ROUTER socket (mpc/service.py); only the two servers' keys
    get in."""

    max_frame_bytes = MAX_REQUEST_BYTES
    max_message_frames = 1  # a request is its header alone
    max_message_bytes = MAX_REQUEST_BYTES
    refusals = (DealerError, CorrelationError, KeyError, TypeError)
    mandatory_routing = True
    log = log

    def __init__(self, keys: KeyPair, server_publics: tuple[bytes, bytes], address: str,
                 max_job_elements: int = MAX_JOB_ELEMENTS):
        super().__init__(keys, address, {key: Caller(SERVER, name)
                                         for key, name in zip(server_publics, SERVER_NAMES,
                                                              strict=True)})
        self.server_publics = server_publics
        self.max_job_elements = max_job_elements
        self.sessions: dict[str, _Session] = {}
        self.actions = {
            OPEN: Action(self._open, (SERVER,), (_party, header_field("job"))),
            GET: Action(self._get, (SERVER,), (_party, whole_header)),
            CLOSE: Action(self._close, (SERVER,), (_party, header_field("job"))),
        }

    def _open(self, party: int, job) -> tuple[dict, list[np.ndarray]]:
        if not isinstance(job, str) or not job:
            raise DealerError("a session needs a job id")
        session = self.sessions.setdefault(
            job, _Session(keys=(os.urandom(KEY_BYTES), os.urandom(KEY_BYTES))))
        if party in session.opened_by:
            raise DealerError(
                f"job {job} was already opened by {SERVER_NAMES[party]}; "
                "correlations are never handed out twice: start a new job id")
        session.opened_by.add(party)
        return {}, [np.frombuffer(session.keys[party], dtype=np.uint8)]

    def _close(self, party: int, job) -> dict:
        session = self.sessions.get(job)
        if session is not None:
            session.closed_by.add(party)
            if session.closed_by == {0, 1}:
                del self.sessions[job]  # both done: forget the keys
        return {}

    def _get(self, party: int, header: dict) -> tuple[dict, list[np.ndarray]]:
        counts, corrections = self._corrections(party, header)
        return {"counts": counts}, corrections

    def _corrections(self, party: int, header: dict) -> tuple[list[int], list[np.ndarray]]:
        """Corrections for a batch of [seq, kind, params] requests; all or nothing."""
        session = self.sessions.get(header.get("job", ""))
        if session is None or party not in session.opened_by:
            raise DealerError(f"no open session for job {header.get('job')!r}")
        requests = header.get("requests")
        if not isinstance(requests, list) or not 0 < len(requests) <= MAX_BATCH:
            raise DealerError(f"a batch holds 1 to {MAX_BATCH} requests")
        total, seen, mask = 0, set(), session.mask
        masks = {}  # seq -> the number of the session's latest row mask before it
        for request in requests:
            if not (isinstance(request, list) and len(request) == 3):
                raise DealerError("malformed request")
            seq, kind_name, params = request
            kind = KINDS.get(kind_name)
            if kind is None or not isinstance(params, dict) or not isinstance(seq, int) or seq < 0:
                raise DealerError(f"malformed request for correlation {seq!r}")
            kind.validate(params)
            total += kind.elements(params)
            if kind.receiver(params) != party:
                raise DealerError(f"{SERVER_NAMES[party]} is not the receiver of this {kind_name}")
            if seq in session.served or seq in seen:
                raise DealerError(f"correlation {seq} of job {header['job']} was already served")
            seen.add(seq)
            masks[seq] = None if mask is None else mask.seq
            mask = kind.mask_after(mask, seq, params)  # checks what reads the mask
        if total > MAX_ELEMENTS and len(requests) > 1:
            raise CorrelationError(f"request for {total} elements exceeds {MAX_ELEMENTS}")
        if session.elements + total > self.max_job_elements:
            raise DealerError(f"job {header['job']} would take {session.elements + total} "
                              f"correlation elements in all, over the dealer's bound of "
                              f"{self.max_job_elements} per job")
        session.elements += total
        session.mask = mask
        counts, corrections = [], []
        for seq, kind_name, params in requests:
            session.served.add(seq)
            correction = KINDS[kind_name].dealer_correction(session.keys, seq, params,
                                                            masks[seq])
            counts.append(len(correction))
            corrections.extend(correction)
        return counts, corrections


class DealerSource(CorrelationSource):
    """A server's view of the dealer: expands its own seeds, fetches its corrections, one
    message per producer batch."""

    cheap_ands = True

    def __init__(self, socket: zmq.asyncio.Socket, party_id: int, job_id: str,
                 accounting: Accounting, timeout_s: float):
        super().__init__(accounting)
        self.socket = socket
        self.party_id = party_id
        self.job_id = job_id
        self.timeout_s = timeout_s
        self._key: bytes | None = None
        self._seq = 0

    def _unreachable(self) -> str:
        return (f"server {self.party_id}: no answer from the dealer within {self.timeout_s:g} s; "
                "check that it runs, its address and its public key")

    async def _call(self, header: dict) -> tuple[dict, list[np.ndarray]]:
        request = wire.encode({**header, "job": self.job_id})
        self.accounting.record_dealer_request(wire.message_bytes(request))
        try:
            await send_within(self.socket, request, self.timeout_s, self._unreachable())
        except PeerTimeout as error:
            raise DealerError(str(error)) from None
        try:
            async with asyncio.timeout(self.timeout_s):
                frames = await self.socket.recv_multipart(copy=False)
        except TimeoutError:
            raise DealerError(self._unreachable()) from None
        reply, arrays = wire.decode(frames)
        if not reply.get("ok"):
            raise DealerError(f"dealer refused server {self.party_id}: {reply.get('error')}")
        self.accounting.cost().dealer_bytes += wire.message_bytes(frames)
        return reply, arrays

    async def open(self) -> None:
        with self.accounting.offline():
            _, (key,) = await self._call({"action": OPEN})
        self._key = key.tobytes()

    async def close(self) -> None:
        await super().close()
        await self._call({"action": CLOSE})

    async def _produce(self, batch: list[Request]) -> list[tuple]:
        if self._key is None:
            raise DealerError("dealer session not opened")
        numbered = list(enumerate(batch, start=self._seq))
        self._seq += len(batch)
        mine = [[seq, kind, params] for seq, (kind, params) in numbered
                if KINDS[kind].receiver(params) == self.party_id]
        fetching = asyncio.ensure_future(self._fetch(mine))
        try:
            await asyncio.sleep(0)  # the first request leaves before our seeds are expanded,
            # so the dealer makes the corrections while this server makes its own part
            own = [KINDS[kind].own(self.party_id, Prg(self._key, seq), params)
                   for seq, (kind, params) in numbered]
            corrections = await fetching
        finally:
            fetching.cancel()
        return [KINDS[kind].assemble(self.party_id, part, corrections.get(seq, []), params)
                for part, (seq, (kind, params)) in zip(own, numbered, strict=True)]

    async def _fetch(self, mine: list[list]) -> dict[int, list[np.ndarray]]:
        """This server's corrections for its requests [seq, kind, params], by seq."""
        corrections: dict[int, list[np.ndarray]] = {}
        for requests in _messages(mine):
            reply, arrays = await self._call({"action": GET, "requests": requests})
            counts = reply.get("counts")
            if not isinstance(counts, list) or sum(counts) != len(arrays):
                raise DealerError(f"server {self.party_id}: malformed reply from the dealer")
            for (seq, _, _), count in zip(requests, counts, strict=True):
                corrections[seq], arrays = arrays[:count], arrays[count:]
        return corrections


def _messages(requests: list[list]):
    """Consecutive requests in messages of at most MAX_BATCH requests and a header the dealer
    accepts (a masked product's rows make its request up to about 41 KiB)."""
    message: list[list] = []
    size = 0
    for request in requests:
        cost = len(msgpack.packb(request))
        if message and (len(message) == MAX_BATCH or size + cost > REQUEST_ROOM):
            yield message
            message, size = [], 0
        message.append(request)
        size += cost
    if message:
        yield message


async def connect_dealer(context: zmq.asyncio.Context, keys: KeyPair, dealer_public: bytes,
                         address: str) -> zmq.asyncio.Socket:
    socket = context.socket(zmq.DEALER)
    socket.linger = 0
    make_client_socket(socket, keys, dealer_public)
    socket.connect(address)
    return socket
