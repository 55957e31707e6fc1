"""Malformed messages from registered keys get an error reply and never stop a server or the
dealer (real processes, real sockets); a valid job afterwards still comes out right."""

import math
import tomllib

import msgpack
import pytest

from tests.support.fuzzing import Client, fuzz, valid_job_is_right
from tests.support.servers import SCHEMA
from twofold.cli.local_cluster import LocalCluster
from twofold.mpc.curve import load_keypair, load_public_key
from twofold.owners.schema import parse_schema
from twofold.servers.config import load_dealer_config
from twofold.servers.server import MAX_FRAME_BYTES

pytestmark = pytest.mark.integration  # two servers, in process or not


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(timeout_s=30, schema_text=SCHEMA, owners=("alice", "bob")) as cluster:
        cluster.start_all()
        yield cluster


def client(cluster, who, target="server0"):
    keys = cluster.folder / "keys"
    address = (load_dealer_config(cluster.folder / "dealer.toml").listen if target == "dealer"
               else cluster.listen[int(target[-1])])
    return Client(load_keypair(keys / f"{who}.key_secret"),
                  load_public_key(keys / f"{'dealer' if target == 'dealer' else target}.key"),
                  address, wait_s=10.0)


def request(header, *frames, arrays=None):
    return [msgpack.packb({**header, "arrays": arrays or []}), *frames]


SCHEMA_HASH = parse_schema(tomllib.loads(SCHEMA)).hash


def begin(**fields):
    return {"action": "begin", "upload_id": "u1", "table": "customers", "rows": 2,
            "schema_hash": SCHEMA_HASH,
            "columns": ["id", "age", "income", "member", "region", "_valid"], "digest": "d",
            **fields}


CASES = [  # (who, target, frames, what the error says); each used to stop the process
    ("alice", "server0", [b"\xc1\xc1 not msgpack"], "malformed message"),
    ("alice", "server0", request({"action": "hello"}, b"x" * 8,
                                 arrays=[["uint64", [1]], ["uint64", [1]]]), "announces 2 arrays"),
    ("alice", "server0", request({"action": "hello"}, b"",
                                 arrays=[["uint64", [2**32, 2**32]]]), "header announces"),
    ("alice", "server0", request({"action": "hello"}, b"", arrays=[[{"a": 1}, [1]]]),
     "not allowed"),  # a dtype that is not even hashable
    ("alice", "server0", request(begin(policy="[]")), "malformed policy"),
    ("alice", "server0", request({"action": "status", "table": [1]}), "'table' must be a string"),
    ("alice", "server0", request(begin(rows=2**64 - 1)), "'rows' must be a whole number"),
    ("alice", "server0", request(begin(rows=math.nan)), "'rows' must be a whole number"),
    ("alice", "server0", request({"action": "job_status", "job_id": [1]}), "job id"),
    ("alice", "server0", request({"action": "job_status", "job_id": "a/b/c"}), "job id"),
    ("alice", "server0", request({"action": "fetch_output", "job_id": "../j1"}), "submitter"),
    ("alice", "server0", request({"action": "job_submit", "job_id": "alice/j1", "spec": ""}),
     "job id 'alice/j1' is not"),
    ("server1", "server0", request({"action": "job_start", "job_id": "j1", "spec_hash": ""}),
     "submitter"),
    ("server0", "server1", request({"action": "job_abandon", "submitter": "alice",
                                    "job_id": "j1", "error": "e"}), ""),
    ("alice", "server0", request({"action": "job_submit", "job_id": "j1", "spec": 5}),
     "'spec' must be a string"),
    ("server1", "server0", request({"action": "peer_check", "record": "x"}), "upload record"),
    ("server1", "server0", request({"action": "peer_check", "record": {"rows": []}}),
     "upload record"),
    ("server1", "server0", request({"action": "preprocess_start", "session_id": "../x"}),
     "session id"),
    ("server1", "server0", request({"action": "preprocess_start", "session_id": "s"}),
     "server 0 starts idle preprocessing"),
    ("server0", "server1", request({"action": "preprocess_start", "session_id": "s"}), ""),
    ("server0", "dealer", request({"action": "get", "job": "j",
                                   "requests": [[0, "matrix_triples", {"dims": [1, 2]}]]}),
     "no open session"),
    ("server0", "dealer", request({"action": "open", "job": "fuzz"}), ""),
    ("server0", "dealer", request({"action": "get", "job": "fuzz", "requests": []}),
     "a batch holds 1 to"),
    ("server0", "dealer", request({"action": "get", "job": "fuzz",
                                   "requests": [[0, "matrix_triples", {"dims": [1, 2]}]]}),
     "ValueError"),
    ("server0", "dealer", request({"action": "get", "job": "fuzz",
                                   "requests": [[1, "beaver_triples", {"shape": [2**62, 4]}]]}),
     "exceeds"),
    ("server0", "dealer", request({"action": "get", "job": "fuzz",
                                   "requests": [[2, "beaver_triples", {"shape": [2**63, 2]}]]}),
     "exceeds"),
]


def test_named_malformed_requests_are_refused(cluster):
    for who, target, frames, message in CASES:
        sender = client(cluster, who, target)
        try:
            reply = sender.request(frames)
        finally:
            sender.close()
        assert reply is not None, (who, target, frames)
        if message:
            assert reply["ok"] is False and message in reply["error"], (reply, message)
        assert all(p.poll() is None for p in (cluster.dealer, *cluster.servers)), message
    hello = client(cluster, "alice")
    assert hello.request(request({"action": "hello"}))["ok"] is True
    hello.close()


def test_a_frame_above_the_size_limit_drops_only_its_sender(cluster):
    sender = client(cluster, "alice")
    oversize = request({"action": "hello"}, bytes(MAX_FRAME_BYTES + 1),
                       arrays=[["uint8", [MAX_FRAME_BYTES + 1]]])
    assert sender.request(oversize, wait_s=2.0) is None
    assert sender.request(request({"action": "hello"}))["ok"] is True  # a new connection
    sender.close()
    assert all(p.poll() is None for p in cluster.servers)


@pytest.mark.parametrize("target", ["server", "dealer"])
def test_random_and_mutated_messages_stop_nothing(cluster, target):
    tally = fuzz(cluster, target, per_handler=40, seed=7, oversize=1)
    assert tally.deaths == 0 and tally.unanswered == 0, tally
    assert tally.refused > tally.ok > 0 and tally.dropped >= 1


def test_a_valid_job_after_the_fuzzing_is_right(cluster, tmp_path):
    assert valid_job_is_right(cluster, tmp_path)
