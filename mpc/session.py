"""Opening a job on one server: connect to the peer and the dealer, build the Party."""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass

import zmq
import zmq.asyncio

from mpc.accounting import Accounting
from mpc.curve import KeyPair
from mpc.dealer import DealerSource, connect_dealer
from mpc.link import DEFAULT_TIMEOUT_S, PeerLink, connect_peer
from mpc.party import Party
from mpc.prg import Prg
from mpc.ring import FixedPoint


@dataclass(frozen=True)
class Endpoints:
    """Where one server finds its peer and the dealer, and whose keys to trust."""

    party_id: int
    keys: KeyPair
    peer_public: bytes
    peer_address: str  # server 0 listens here, server 1 connects here
    dealer_public: bytes
    dealer_address: str
    timeout_s: float = DEFAULT_TIMEOUT_S


@asynccontextmanager
async def open_party(endpoints: Endpoints, job_id: str, fixed: FixedPoint = FixedPoint(),
                     accounting: Accounting | None = None,
                     cancel: threading.Event | None = None):
    """A connected Party for one job. If the body raises, the peer is told and fails fast."""
    context = zmq.asyncio.Context()
    connection = dealer_socket = None
    accounting = accounting or Accounting()
    try:
        connection = await connect_peer(context, endpoints.party_id, endpoints.keys,
                                        endpoints.peer_public, endpoints.peer_address,
                                        endpoints.timeout_s)
        dealer_socket = await connect_dealer(context, endpoints.keys, endpoints.dealer_public,
                                             endpoints.dealer_address)
        link = PeerLink(connection.socket, endpoints.party_id, job_id, accounting,
                        endpoints.timeout_s, cancel)
        corr = DealerSource(dealer_socket, endpoints.party_id, job_id, accounting,
                            endpoints.timeout_s)
        await corr.open()
        party = Party(id=endpoints.party_id, link=link, corr=corr, rng=Prg.fresh(),
                      accounting=accounting, fixed=fixed)
        try:
            yield party
        except BaseException as error:
            await link.abort(f"{type(error).__name__}: {error}")
            raise
        await link.finish()
        await corr.close()
    finally:
        if dealer_socket is not None:
            dealer_socket.close(0)
        if connection is not None:
            connection.close()
        context.term()
