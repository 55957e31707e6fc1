"""Opening a job on one server: connect to the peer, agree on settings, open the source of
correlated randomness (the dealer, or OT with the peer), and build the Party."""

from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmq
import zmq.asyncio

from twofold.mpc.accounting import Accounting
from twofold.mpc.correlation_source import CorrelationSource
from twofold.mpc.curve import KeyPair
from twofold.mpc.dealer import DealerSource, connect_dealer
from twofold.mpc.errors import SettingsMismatch
from twofold.mpc.link import DEFAULT_TIMEOUT_S, PeerLink, StopSignal, connect_peer
from twofold.mpc.party import Party
from twofold.mpc.prg import Prg
from twofold.mpc.ring import FixedPoint

CORRELATIONS = ("dealer", "ot")  # where correlated randomness comes from
DEFAULT_FIXED = FixedPoint()  # frozen: one instance serves as every call's default


@dataclass(frozen=True)
class Endpoints:
    """Where one server finds its peer (and the dealer, if it uses one), and whose keys to
    trust. With correlations = "ot" the two servers make correlations between themselves and
    no dealer is named."""

    party_id: int
    keys: KeyPair
    peer_public: bytes
    peer_address: str  # server 0 listens here, server 1 connects here
    dealer_public: bytes | None = None
    dealer_address: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    correlations: str = "dealer"
    cot_store: Path | None = None  # OT mode: where COTs made in idle time are kept

    def __post_init__(self):
        if self.correlations not in CORRELATIONS:
            raise ValueError(f"correlations must be one of {', '.join(CORRELATIONS)}")
        if self.correlations == "dealer":
            self.dealer()  # refuses a dealer without its address or key

    def dealer(self) -> tuple[bytes, str]:
        """The dealer's public key and address (correlations = "dealer")."""
        if self.dealer_public is None or self.dealer_address is None:
            raise ValueError("correlations = \"dealer\" needs the dealer's address and key")
        return self.dealer_public, self.dealer_address


async def agree_on_correlations(link: PeerLink, correlations: str) -> None:
    """Both servers must make correlations the same way; each says which, both check."""
    mine = np.array([CORRELATIONS.index(correlations)], np.uint64)
    (theirs,) = await link.exchange(mine)
    if int(theirs[0]) != int(mine[0]):
        other = CORRELATIONS[int(theirs[0])] if int(theirs[0]) < len(CORRELATIONS) else "?"
        raise SettingsMismatch(
            f"server {link.party_id} has correlations = \"{correlations}\" but server "
            f"{link.peer_id} has correlations = \"{other}\"; both configs must say the same")


async def _open_source(endpoints: Endpoints, context: zmq.asyncio.Context, link: PeerLink,
                       job_id: str, accounting: Accounting,
                       stack: AsyncExitStack) -> CorrelationSource:
    if endpoints.correlations == "ot":
        # imported here: OT mode loads numba, slow to import, which dealer mode never needs
        from twofold.mpc.ot.source import OtSource
        from twofold.mpc.ot.store import CotStore

        store = CotStore(endpoints.cot_store) if endpoints.cot_store is not None else None
        source: CorrelationSource = OtSource(link, accounting, store=store)
    else:
        dealer_socket = await connect_dealer(context, endpoints.keys, *endpoints.dealer())
        stack.callback(dealer_socket.close, 0)
        source = DealerSource(dealer_socket, endpoints.party_id, job_id, accounting,
                              endpoints.timeout_s)
    stack.push_async_callback(source.stop)
    await source.open()
    return source


@asynccontextmanager
async def open_party(endpoints: Endpoints, job_id: str, fixed: FixedPoint = DEFAULT_FIXED,
                     accounting: Accounting | None = None,
                     cancel: StopSignal | None = None):
    """A connected Party for one job. If the body raises, the peer is told and fails fast.
    Its own costs go to the stages "connect" (link, settings, correlation source) and
    "close"."""
    context = zmq.asyncio.Context()
    accounting = accounting or Accounting()
    try:
        async with AsyncExitStack() as stack:  # closed in reverse: source, link, sockets
            with accounting.stage("connect"):
                connection = await connect_peer(context, endpoints.party_id, endpoints.keys,
                                                endpoints.peer_public, endpoints.peer_address,
                                                endpoints.timeout_s)
            stack.callback(connection.close)
            link = PeerLink(connection.socket, endpoints.party_id, job_id, accounting,
                            endpoints.timeout_s, cancel)
            stack.push_async_callback(link.close)
            corr = None
            try:
                with accounting.stage("connect"):
                    await agree_on_correlations(link, endpoints.correlations)
                    corr = await _open_source(endpoints, context, link, job_id, accounting,
                                              stack)
                party = Party(id=endpoints.party_id, link=link, corr=corr, rng=Prg.fresh(),
                              accounting=accounting, fixed=fixed)
                yield party
            except BaseException as error:
                if corr is not None:  # its queued offline sends go, so the abort comes next
                    await corr.stop()
                await link.abort(f"{type(error).__name__}: {error}")
                raise
            with accounting.stage("close"):
                await link.finish()
                await corr.close()
    finally:
        context.term()
