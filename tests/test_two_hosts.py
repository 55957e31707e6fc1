"""Server 0 and server 1 on two hosts and nothing else: each in its own network namespace with
its own config, joined by a veth pair (10.203.0.1 and 10.203.0.2), with correlations = "ot"
(no dealer anywhere; the servers make COTs ahead with `twofold server preprocess`). The clients
sit with server 0, so everything server 1 does crosses the link. Skipped where namespaces
cannot be made (not root, no iproute2)."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import WALKTHROUGH_RULES
from twofold.mpc.ot.pool import CotPool

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # server processes

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "walkthrough"
HOSTS = ("10.203.0.1", "10.203.0.2")


def sh(*args):
    return subprocess.run(args, capture_output=True, text=True, check=True)


@pytest.fixture
def namespaces():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    tag = os.getpid() % 100000
    names, links = (f"tf{tag}a", f"tf{tag}b"), (f"tfv{tag}a", f"tfv{tag}b")
    try:
        for name in names:
            sh("ip", "netns", "add", name)
        sh("ip", "link", "add", links[0], "type", "veth", "peer", "name", links[1])
        for name, link, host in zip(names, links, HOSTS, strict=True):
            sh("ip", "link", "set", link, "netns", name)
            sh("ip", "netns", "exec", name, "ip", "addr", "add", f"{host}/24", "dev", link)
            sh("ip", "netns", "exec", name, "ip", "link", "set", link, "up")
            sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
    except subprocess.CalledProcessError as error:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        pytest.skip(f"cannot make network namespaces here: {error.stderr.strip()}")
    yield names
    for name in names:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def in_host(host, folder, *args, wait=True):
    command = ["ip", "netns", "exec", host, sys.executable, "-m", "twofold.cli.main",
               *map(str, args)]
    if wait:
        return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300)
    return subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def reachable(host_ns, address, port) -> bool:
    probe = (f"import socket; socket.create_connection(('{address}', {port}), timeout=0.2)")
    return subprocess.run(["ip", "netns", "exec", host_ns, sys.executable, "-c", probe],
                          capture_output=True).returncode == 0


def test_servers_on_two_hosts(namespaces, tmp_path):
    first, second = namespaces
    folder = tmp_path / "deployment"
    shutil.copytree(EXAMPLE, folder)
    for config in folder.glob("*.toml"):  # the same configs, with each host's own address
        text = config.read_text()
        text = text.replace("127.0.0.1:7101", f"{HOSTS[1]}:7101")
        text = text.replace('correlations = "dealer"', 'correlations = "ot"')
        lines = [line for line in text.splitlines() if not line.startswith("dealer_")]
        config.write_text("\n".join(lines).replace("127.0.0.1", HOSTS[0]) + "\n")
    (folder / "dealer.toml").unlink()
    for name in ("server0", "server1", "alice", "bob", "carol"):
        assert in_host(first, folder, "keys", "generate", name, "--dir", "keys").returncode == 0
    preprocessing = [in_host(host, folder, "server", "preprocess", "--config", config,
                             "--cots", 600000, wait=False)
                     for host, config in ((first, "server0.toml"), (second, "server1.toml"))]
    assert [process.wait(timeout=120) for process in preprocessing] == [0, 0]
    batches = -(-600000 // CotPool.batch_size())  # per direction
    assert len(list((folder / "data1" / "correlations").glob("*.cots"))) == 2 * batches
    services = [in_host(first, folder, "server", "run", "--config", "server0.toml", wait=False),
                in_host(second, folder, "server", "run", "--config", "server1.toml", wait=False)]
    try:
        deadline = time.monotonic() + 30
        while not all(reachable(first, host, port) for host, port in
                      ((HOSTS[0], 7100), (HOSTS[1], 7101))):
            assert time.monotonic() < deadline, "services did not come up"
            time.sleep(0.2)
        for data, table, owner in (("customers.csv", "customers", "alice"),
                                   ("orders.csv", "orders", "bob")):
            run = in_host(first, folder, "owner", "upload", data, "--table", table, "--schema",
                          "schema.toml", "--config", f"{owner}.toml", *WALKTHROUGH_RULES[owner])
            assert run.returncode == 0, run.stderr
        run = in_host(first, folder, "job", "submit", "revenue.toml", "--config", "carol.toml",
                      "--id", "twohosts", "--wait")
        assert run.returncode == 0 and "done" in run.stdout, run.stderr
        lines = in_host(first, folder, "reveal", "twohosts", "--config",
                        "carol.toml").stdout.strip().splitlines()
        assert lines[1:] == ["north,3,162.4,54.13333333333333", "south,2,325.25,162.625"]
    finally:
        for service in services:
            service.terminate()
            service.wait(timeout=10)
