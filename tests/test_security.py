"""What a server sees: message sizes that depend only on shapes, uniform shares, and no
insecure randomness or pickling in the product code."""

import re
from pathlib import Path

import numpy as np
import pytest

from tests.support.harness import run_pair, shares_of
from tests.support.statistics import CHI2_LIMIT, two_sample_statistic, uniformity_statistic
from twofold.mpc.prg import Prg
from twofold.mpc.protocols.arithmetic import fixed_mul, matmul, mul, truncate
from twofold.mpc.protocols.boolean import (
    RIPPLE_COMPARISONS_FROM,
    RIPPLE_FROM_OT,
    arith_to_bool,
    bool_to_arith,
    equal,
    less_than,
    mux,
)
from twofold.mpc.protocols.scan import segmented_scan
from twofold.mpc.protocols.shuffle import shuffle
from twofold.mpc.protocols.sort import SortKey, sort
from twofold.mpc.ring import U64
from twofold.mpc.sharing import split

ROOT = Path(__file__).resolve().parent.parent
PRODUCT_PACKAGES = ["mpc", "owners", "servers", "sorting_join", "ml", "cli", "twofold", "bench"]


async def every_protocol(party, x, y, heads):
    """One pass over every protocol, on inputs of fixed shapes."""
    out = [await mul(party, x, y), await fixed_mul(party, x, y), await truncate(party, x),
           await matmul(party, x.reshape(4, -1), y.reshape(-1, 4)),
           await less_than(party, x, y), await equal(party, x, y)]
    words = await arith_to_bool(party, x)
    out += [await bool_to_arith(party, words), await mux(party, heads, x, y)]
    out += await shuffle(party, [x, y])
    out += await sort(party, [x, y], [SortKey(x, bits=64), SortKey(y, bits=20, signed=True)])
    out += await segmented_scan(party, heads, [x, y], "copy")
    out += await segmented_scan(party, heads, [x], "sum")
    return out


async def carry_protocols(party, x, y, heads):
    """The protocols whose carries ripple (or go block by block) for many values: comparisons
    and adders."""
    words = await arith_to_bool(party, x)
    return [await less_than(party, x, y), await equal(party, x, y),
            await bool_to_arith(party, words)]


def message_trace(x, y, heads, seed, source, program=every_protocol):
    """Per server, the sizes of the messages it sent, per stream (peer channel or dealer)."""
    rng = np.random.default_rng(seed)
    pairs = [shares_of(v, rng) for v in (x, y, heads)]
    _, sizes = run_pair(program, tuple(p[0] for p in pairs), tuple(p[1] for p in pairs),
                        record_sizes=True, source=source, timeout_s=60.0)
    streams = []
    for server_sizes in sizes:
        by_stream = {}
        for stream, size in server_sizes:
            by_stream.setdefault(stream, []).append(size)
        streams.append(by_stream)
    return streams


def assert_same_messages(n, source, program):
    """Two runs on different data, each with fresh correlations (dealer keys or OTs): the same
    messages, size for size, on every stream. OT extension batches follow a fixed schedule;
    where the job ends may cut it at a different batch, so those streams agree up to the
    shorter one."""
    first = message_trace(np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64), 1,
                          source, program)
    rng = np.random.default_rng(99)
    second = message_trace(rng.integers(-(2**20), 2**20, n), rng.integers(-(2**19), 2**19, n),
                           rng.integers(0, 2, n), 2, source, program)
    for server in (0, 1):
        assert len(first[server]["online"]) > 100 and set(first[server]) == set(second[server])
        for stream, sizes in first[server].items():
            other = second[server][stream]
            if stream.startswith("ot-extend"):
                common = min(len(sizes), len(other))
                assert common > 0 and sizes[:common] == other[:common]
            else:
                assert sizes == other, stream


def test_message_sizes_depend_only_on_shapes(source):
    assert_same_messages(48, source, every_protocol)


@pytest.mark.parametrize("source, n", [("dealer", RIPPLE_COMPARISONS_FROM),
                                       ("ot", RIPPLE_FROM_OT)])
def test_message_sizes_of_rippling_carries_depend_only_on_shapes(source, n):
    """Comparisons and adders over as many values as make their carries ripple bit by bit."""
    assert_same_messages(n, source, carry_protocols)


@pytest.mark.parametrize("shift", [0, 28, 56])
def test_owner_shares_of_zero_and_of_a_large_constant_look_alike(shift):
    count = 1 << 16
    zero_shares = split(np.zeros(count, np.int64), Prg.fresh())
    big_shares = split(np.full(count, 2**62 + 12345, np.int64), Prg.fresh())
    for server in (0, 1):
        assert uniformity_statistic(zero_shares[server], shift) < CHI2_LIMIT
        assert uniformity_statistic(big_shares[server], shift) < CHI2_LIMIT
        assert two_sample_statistic(zero_shares[server], big_shares[server], shift) < CHI2_LIMIT


def test_protocol_output_shares_of_zero_and_of_a_constant_look_alike():
    """A server's share of mul(x, 1) and of a sort's output do not depend on x."""
    count = 1 << 14

    async def program(party, x):
        one = party.public(np.ones(count, U64))
        (sorted_x,) = await sort(party, [x], [SortKey(x, bits=64)])
        return [await mul(party, x, one), sorted_x]

    results = {}
    for label, value in (("zero", 0), ("big", 2**62 + 7)):
        x0, x1 = shares_of(np.full(count, value, np.int64), np.random.default_rng(value % 97))
        results[label] = run_pair(program, (x0,), (x1,), timeout_s=60)
    for server in (0, 1):
        for output in (0, 1):
            a, b = results["zero"][server][output], results["big"][server][output]
            for shift in (0, 56):
                assert uniformity_statistic(a, shift) < CHI2_LIMIT
                assert two_sample_statistic(a, b, shift) < CHI2_LIMIT


FORBIDDEN = re.compile(r"\bnp\.random\b|numpy\.random|^\s*import random\b|^\s*from random\b|"
                       r"\bpickle\b|recv_pyobj|send_pyobj|msgpack_numpy", re.MULTILINE)


def test_no_insecure_randomness_or_pickle_in_product_code():
    offenders = []
    for package in PRODUCT_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for match in FORBIDDEN.finditer(path.read_text()):
                offenders.append(f"{path.relative_to(ROOT)}: {match.group(0).strip()}")
    assert offenders == []
