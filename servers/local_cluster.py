"""A dealer and two servers as separate processes on loopback, with fresh keys in a temporary
folder. Used by `twofold bench` and by tests that need real processes."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from mpc.curve import generate_keypair


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ProcessError(RuntimeError):
    """A server or dealer process failed; carries what it printed on stderr."""


class LocalCluster:
    def __init__(self, timeout_s: float = 120.0):
        self.timeout_s = timeout_s
        self.folder = Path(tempfile.mkdtemp(prefix="twofold-"))
        self.dealer: subprocess.Popen | None = None

    def __enter__(self) -> "LocalCluster":
        keys = self.folder / "keys"
        for name in ("dealer", "server0", "server1"):
            generate_keypair(keys, name)
        dealer_address = f"tcp://127.0.0.1:{_free_port()}"
        peer_address = f"tcp://127.0.0.1:{_free_port()}"
        (self.folder / "dealer.toml").write_text(
            "[dealer]\n"
            'secret_key = "keys/dealer.key_secret"\n'
            f'listen = "{dealer_address}"\n'
            'server_public_keys = ["keys/server0.key", "keys/server1.key"]\n')
        for party in (0, 1):
            (self.folder / f"server{party}.toml").write_text(
                "[server]\n"
                f"party = {party}\n"
                f'secret_key = "keys/server{party}.key_secret"\n'
                f'peer_public_key = "keys/server{1 - party}.key"\n'
                f'peer_address = "{peer_address}"\n'
                'dealer_public_key = "keys/dealer.key"\n'
                f'dealer_address = "{dealer_address}"\n'
                f"timeout_s = {self.timeout_s}\n")
        self.dealer = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "dealer", "run",
             "--config", str(self.folder / "dealer.toml")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def start(self, program: str, params: dict) -> list[subprocess.Popen]:
        """Start program on both servers as one new job; returns the two processes."""
        job = uuid.uuid4().hex
        return [subprocess.Popen(
            [sys.executable, "-m", "servers.worker", "--config",
             str(self.folder / f"server{party}.toml"), "--job", job, "--program", program,
             "--params", json.dumps(params)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for party in (0, 1)]

    def run(self, program: str, params: dict) -> list:
        """Run program on both servers as one job; returns both results."""
        workers = self.start(program, params)
        outputs = [worker.communicate() for worker in workers]
        for party, (worker, (_, stderr)) in enumerate(zip(workers, outputs)):
            if worker.returncode != 0:
                raise ProcessError(f"server {party} failed: {stderr.strip()}")
        return [json.loads(stdout) for stdout, _ in outputs]

    def __exit__(self, *exc) -> None:
        if self.dealer is not None:
            self.dealer.terminate()
            self.dealer.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)
