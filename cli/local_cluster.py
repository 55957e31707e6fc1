"""A dealer and two servers as separate processes on loopback, with fresh keys in a temporary
folder; or, with correlations = "ot", the two servers alone. Used by `twofold bench`, the
demo, and tests that need real processes. Servers run `twofold server run`, or a benchmark
program as one job (bench/worker.py)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from twofold.client import Client
from twofold.mpc.curve import generate_keypair
from twofold.mpc.errors import TwofoldError
from twofold.mpc.signing import generate_signing_keypair
from twofold.owners.policy import Policy
from twofold.owners.schema import load_schema


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _address() -> str:
    return f"tcp://127.0.0.1:{_free_port()}"


class ProcessError(TwofoldError, RuntimeError):
    """A server or dealer process failed; carries what it printed on stderr."""


class LocalCluster:
    """Keys and configs for a dealer, two servers and some owners; starts what is asked for."""

    def __init__(self, timeout_s: float = 120.0, schema_text: str | None = None,
                 owners: tuple[str, ...] = (), correlations: str = "dealer",
                 idle_cots: int = 0):
        self.timeout_s = timeout_s
        self.correlations = correlations
        self.idle_cots = idle_cots
        self.schema_text = schema_text
        self.owners = owners
        self.folder = Path(tempfile.mkdtemp(prefix="twofold-"))
        self.dealer: subprocess.Popen | None = None
        self.servers: list[subprocess.Popen | None] = [None, None]

    def __enter__(self) -> LocalCluster:
        keys = self.folder / "keys"
        for name in ("dealer", "server0", "server1", *self.owners):
            generate_keypair(keys, name)
        for name in ("server0", "server1"):
            generate_signing_keypair(keys, name)
        dealer_address, peer_address = _address(), _address()
        self.listen = [_address(), _address()]
        (self.folder / "schema.toml").write_text(self.schema_text or "")
        (self.folder / "dealer.toml").write_text(
            "[dealer]\n"
            'secret_key = "keys/dealer.key_secret"\n'
            f'listen = "{dealer_address}"\n'
            'server_public_keys = ["keys/server0.key", "keys/server1.key"]\n')
        owners = "".join(f'{name} = "keys/{name}.key"\n' for name in self.owners)
        dealer_lines = ('dealer_public_key = "keys/dealer.key"\n'
                        f'dealer_address = "{dealer_address}"\n'
                        if self.correlations == "dealer" else "")
        for party in (0, 1):
            (self.folder / f"server{party}.toml").write_text(
                "[server]\n"
                f"party = {party}\n"
                f'secret_key = "keys/server{party}.key_secret"\n'
                f'signing_key = "keys/server{party}.sign_secret"\n'
                f'listen = "{self.listen[party]}"\n'
                f'peer_public_key = "keys/server{1 - party}.key"\n'
                f'peer_service_address = "{self.listen[1 - party]}"\n'
                f'peer_address = "{peer_address}"\n'
                f'correlations = "{self.correlations}"\n'
                + dealer_lines
                + (f"idle_cots = {self.idle_cots}\n" if self.idle_cots else "") +
                'schema = "schema.toml"\n'
                f'data_dir = "data{party}"\n'
                f"timeout_s = {self.timeout_s}\n"
                f"[owners]\n{owners}")
        for name in self.owners:
            (self.folder / f"{name}.toml").write_text(
                f'[owner]\nsecret_key = "keys/{name}.key_secret"\ntimeout_s = {self.timeout_s}\n'
                + "".join(f'[[servers]]\naddress = "{self.listen[p]}"\n'
                          f'public_key = "keys/server{p}.key"\n'
                          f'verify_key = "keys/server{p}.sign"\n' for p in (0, 1)))
        return self

    def _log(self, name: str):
        """A process's stderr goes to a file: an unread pipe fills up and blocks its logging."""
        return open(self.folder / f"{name}.log", "a")

    def start_dealer(self) -> None:
        """Start the dealer, if the servers use one."""
        if self.correlations != "dealer":
            return
        with self._log("dealer") as log:
            self.dealer = subprocess.Popen(
                [sys.executable, "-m", "twofold.cli.main", "dealer", "run",
                 "--config", str(self.folder / "dealer.toml")],
                stdout=subprocess.DEVNULL, stderr=log)

    def start_server(self, party: int,
                     program: tuple[str, ...] = ("twofold.cli.main", "server", "run"),
                     *extra: str) -> None:
        """Start `twofold server run` (or another module given the same --config, such as a
        test's server that stops itself at a chosen point) and wait until it listens. The
        dealer starts first, if not yet: even an upload's check of its values uses it."""
        if self.dealer is None:
            self.start_dealer()  # a no-op in OT mode
        with self._log(f"server{party}") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", *program,
                 "--config", str(self.folder / f"server{party}.toml"), *extra],
                stdout=subprocess.DEVNULL, stderr=log)
        host, port = self.listen[party].removeprefix("tcp://").rsplit(":", 1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                socket.create_connection((host, int(port)), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        if process.poll() is not None:
            lines = (self.folder / f"server{party}.log").read_text().strip().splitlines()
            raise ProcessError(f"server {party} did not start: {lines[-1] if lines else ''}")
        self.servers[party] = process

    def start_all(self) -> None:
        self.start_dealer()
        self.start_server(0)
        self.start_server(1)

    def upload_all(self, folder: Path, policy: Policy | Callable[[str], Policy]) -> None:
        """Each table's owner uploads <table>.csv from folder (in process), under policy (or
        policy(table))."""
        schema = load_schema(self.folder / "schema.toml")
        for name in schema.tables:
            owner = Client(self.owner_config(schema.table(name).owner))
            owner.upload(folder / f"{name}.csv", name, schema,
                         policy=policy(name) if callable(policy) else policy)

    def kill_server(self, party: int) -> None:
        process = self.servers[party]
        if process is not None:
            process.kill()
            process.wait(timeout=10)
            self.servers[party] = None

    def peak_memory(self) -> list[int]:
        """Each running server's peak resident memory so far, in bytes (VmHWM, Linux)."""
        peaks = []
        for process in self.servers:
            status = Path(f"/proc/{process.pid}/status").read_text() if process else ""
            kilobytes = [line.split()[1] for line in status.splitlines()
                         if line.startswith("VmHWM:")]
            peaks.append(int(kilobytes[0]) * 1024 if kilobytes else 0)
        return peaks

    def owner_config(self, name: str) -> Path:
        return self.folder / f"{name}.toml"

    def start(self, program: str, params: dict) -> list[subprocess.Popen]:
        """Start program on both servers as one new job; returns the two processes."""
        if self.dealer is None:
            self.start_dealer()  # a no-op in OT mode
        job = uuid.uuid4().hex
        return [subprocess.Popen(
            [sys.executable, "-m", "twofold.bench.worker", "--config",
             str(self.folder / f"server{party}.toml"), "--job", job, "--program", program,
             "--params", json.dumps(params)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for party in (0, 1)]

    def run(self, program: str, params: dict) -> list:
        """Run program on both servers as one job; returns both results."""
        workers = self.start(program, params)
        outputs = [worker.communicate() for worker in workers]
        for party, (worker, (_, stderr)) in enumerate(zip(workers, outputs, strict=True)):
            if worker.returncode != 0:
                raise ProcessError(f"server {party} failed: {stderr.strip()}")
        return [json.loads(stdout) for stdout, _ in outputs]

    def __exit__(self, *exc) -> None:
        for process in [self.dealer, *self.servers]:
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
        shutil.rmtree(self.folder, ignore_errors=True)
