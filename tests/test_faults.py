"""Faults end with a clear error on both servers within the timeout, never a hang."""

import asyncio
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from tests.support.harness import free_address, keypair, run_pair
from tests.support.parties import TIMEOUT, multiply, run_timed, two_parties
from twofold.cli.local_cluster import LocalCluster
from twofold.mpc import wire
from twofold.mpc.errors import (
    DealerError,
    JobCancelled,
    MpcError,
    PeerAborted,
    PeerTimeout,
    ProtocolMismatch,
    SettingsMismatch,
)
from twofold.mpc.link import MAX_FRAME_BYTES, StopSignal
from twofold.mpc.ring import U64
from twofold.mpc.session import Endpoints, open_party
from twofold.servers.config import load_dealer_config

pytestmark = pytest.mark.integration  # two servers, in process or not

def test_lone_server_reports_missing_peer():
    async def lone(party_id):
        ends = Endpoints(party_id, keypair(), keypair().public, free_address(),
                         keypair().public, free_address(), TIMEOUT)
        async with open_party(ends, "job"):
            pass

    for party_id in (0, 1):
        with pytest.raises(PeerTimeout, match="public keys"):
            asyncio.run(lone(party_id))


def test_unregistered_peer_key_is_refused_on_both_sides():
    (first, second), elapsed = run_timed(
        two_parties(multiply, multiply, keys1_override=keypair()))
    assert isinstance(first, PeerTimeout) and isinstance(second, PeerTimeout)
    assert elapsed < 4 * TIMEOUT


def test_unreachable_dealer_is_reported():
    (first, second), elapsed = run_timed(two_parties(multiply, multiply, dealer_up=False))
    assert isinstance(first, DealerError) and isinstance(second, DealerError)
    assert "dealer" in str(first) and elapsed < 4 * TIMEOUT


def test_wrong_job_id_stops_both_servers():
    (first, second), _ = run_timed(two_parties(multiply, multiply, jobs=["job-a", "job-b"]))
    errors = {type(first), type(second)}
    assert errors <= {ProtocolMismatch, PeerAborted} and ProtocolMismatch in errors
    assert "expected job" in str(first if isinstance(first, ProtocolMismatch) else second)


def test_out_of_sequence_message_stops_both_servers():
    async def replay(party):
        frames = wire.encode({"kind": "data", "job": party.link.job_id, "seq": 5},
                             [np.zeros(8, U64), np.zeros(8, U64)])
        await party.link.socket.send_multipart(frames)
        return await multiply(party)

    (first, second), _ = run_timed(two_parties(multiply, replay))
    assert isinstance(first, ProtocolMismatch) and "#5" in str(first)
    assert isinstance(second, (PeerAborted, ProtocolMismatch))


def test_mismatched_shapes_stop_both_servers():
    (first, second), elapsed = run_timed(
        two_parties(lambda p: multiply(p, 10), lambda p: multiply(p, 11)))
    assert isinstance(first, MpcError) and isinstance(second, MpcError)
    assert any(isinstance(e, ProtocolMismatch) for e in (first, second))
    assert elapsed < 4 * TIMEOUT


def test_silent_peer_death_times_out():
    async def vanish(party):
        party.link.socket.close(0)  # gone without a word, as after kill -9
        raise ConnectionAbortedError("vanished")

    (first, _), elapsed = run_timed(two_parties(multiply, vanish))
    assert isinstance(first, PeerTimeout) and "server 1" in str(first)
    assert elapsed < 4 * TIMEOUT


@pytest.mark.parametrize("correlations", ["dealer", "ot"])
def test_a_cancel_ends_a_wait_for_the_peer_at_once(correlations):
    """A job stopped (by a client or its server) while it waits for a peer that stays silent
    ends at once with JobCancelled, not after the link's timeout, and the peer is told."""
    stop = StopSignal()

    async def waits(party):
        if correlations == "ot":  # producers waiting on the offline channels too
            party.corr.prefetch(PLANS["large"])
        return await party.link.recv()

    async def cancel_soon(party):
        await asyncio.sleep(0.5)
        threading.Thread(target=stop.set).start()  # as the server's loop does, from elsewhere
        return await party.link.recv()

    (first, second), elapsed = run_timed(two_parties(
        waits, cancel_soon, correlations=(correlations,) * 2, timeout_s=60, stop0=stop))
    assert isinstance(first, JobCancelled), first
    assert isinstance(second, PeerAborted) and "JobCancelled" in str(second), second
    assert elapsed < 20


def connections_to(port: int) -> int:
    """Established TCP connections whose remote end is this loopback port."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            remote, state = line.split()[2:4]
            count += state == "01" and int(remote.rsplit(":", 1)[1], 16) == port
    return count


def test_servers_that_disagree_on_correlations_both_refuse():
    (first, second), elapsed = run_timed(
        two_parties(multiply, multiply, correlations=("ot", "dealer")))
    for error in (first, second):
        assert isinstance(error, SettingsMismatch)
        assert 'correlations = "ot"' in str(error) and 'correlations = "dealer"' in str(error)
    assert elapsed < 4 * TIMEOUT


PLANS = {  # few large requests, each made alone; many small ones, made in groups
    "large": [("beaver_triples", {"shape": [200000]}), ("and_triples", {"shape": [50000]})] * 4,
    "grouped": [("beaver_triples", {"shape": [3000]}),
                ("truncation_pairs", {"shape": [3000], "frac_bits": 16}),
                ("one_of_n", {"shape": [3000], "entries": 64, "sender": 1, "width": 1})] * 300}


@pytest.mark.parametrize("plan", sorted(PLANS))
@pytest.mark.parametrize("how", ["fails", "vanishes"])
def test_peer_stopping_mid_preprocessing_stops_both_within_the_timeout(how, plan):
    """Server 1 stops while both make correlations ahead (OT mode): it fails with an error of
    its own and tells server 0, or it vanishes and server 0 times out; both within bounds."""

    async def preprocess(party):
        party.corr.prefetch(PLANS[plan])
        await party.corr.produced()

    async def stop_midway(party):
        party.corr.prefetch(PLANS[plan])
        await asyncio.sleep(0.3)
        if how == "vanishes":
            party.link.socket.close(0)
        raise ConnectionAbortedError("stopped during preprocessing")

    (first, second), elapsed = run_timed(
        two_parties(preprocess, stop_midway, correlations=("ot", "ot")))
    assert isinstance(second, ConnectionAbortedError)
    if how == "fails":
        assert isinstance(first, PeerAborted) and "stopped during preprocessing" in str(first)
    else:
        assert isinstance(first, PeerTimeout) and "server 1" in str(first)
    assert elapsed < 4 * TIMEOUT


def test_killed_server_process_is_reported_by_the_other():
    with LocalCluster(timeout_s=5.0) as cluster:
        workers = cluster.start("bench_mpc", {"n": 20000, "repeat": 50, "ops": ["sort"]})
        # both workers reach the dealer only after their link's hello: then the job runs (a
        # fixed sleep killed server 1 before its hello on a loaded machine)
        dealer = load_dealer_config(cluster.folder / "dealer.toml").listen
        port = int(dealer.rsplit(":", 1)[1])
        deadline = time.monotonic() + 120
        while connections_to(port) < 2 and time.monotonic() < deadline:
            assert workers[0].poll() is None, workers[0].communicate()
            time.sleep(0.05)
        workers[1].send_signal(signal.SIGKILL)
        start = time.monotonic()
        _, stderr = workers[0].communicate(timeout=30)
        assert workers[0].returncode == 1
        # waiting to receive, or to send into a full queue (a large message when it died)
        assert any(cause in stderr for cause in ("no message from server 1", "stopped",
                                                 "could not send to server 1"))
        assert "the peer is down or unreachable" in stderr or "stopped" in stderr
        assert time.monotonic() - start < 10
        assert "Traceback" not in stderr


def test_the_peer_link_limits_frame_sizes():
    """Both ends of the link drop a peer that sends a frame above MAX_FRAME_BYTES (the service
    and dealer sockets' limits are exercised in tests/test_fuzz.py)."""
    async def limit(party):
        return party.link.socket.getsockopt(zmq.MAXMSGSIZE)

    assert run_pair(limit) == [MAX_FRAME_BYTES, MAX_FRAME_BYTES]


def test_a_direction_whose_extension_fails_ends_both_sides_at_once():
    """OT mode: each server's extension in the direction it receives in raises (numba caches
    left by an older install did). A take must fail at once, not wait on its other direction
    for messages the peer's dead direction will never send, until the timeout."""
    async def broken(party):
        def fail(words):
            raise RuntimeError(f"the extension of server {party.id} broke")
        party.corr.pool.receiving.extension.extend = fail
        await multiply(party)

    (first, second), elapsed = run_timed(
        two_parties(broken, broken, correlations=("ot", "ot"), timeout_s=30))
    for error in (first, second):
        assert "the extension of server" in str(error) and "broke" in str(error)
    assert elapsed < 15  # far below the 30 s a server would wait for a message
