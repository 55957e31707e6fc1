"""The two servers' audit logs as their files hold them, for the check every two-server test
ends with (tests/support/servers.running) and for tests that tamper with a log."""

from __future__ import annotations

import asyncio
from pathlib import Path

from twofold.audit import audited
from twofold.mpc.audit import Entry, decode_view
from twofold.mpc.signing import SigningKey
from twofold.servers.audit import LOG_NAME

SETTLE_S = 10.0  # a job's last entries may still be on their way on one server


def stored_logs(configs) -> list[list[Entry]]:
    """Both servers' whole logs, every entry in full."""
    return [decode_view(log_path(config.data_dir).read_bytes())
            if log_path(config.data_dir).exists() else [] for config in configs]


def log_path(data_dir: Path) -> Path:
    return Path(data_dir) / LOG_NAME


async def logs_agree(configs, signing_keys: list[SigningKey]) -> None:
    """Both chains verify and the servers agree on every event, once the entries of what is
    still finishing (a job's release on the slower server) are in."""
    keys = (signing_keys[0].public_key(), signing_keys[1].public_key())
    deadline = asyncio.get_running_loop().time() + SETTLE_S
    while True:
        problems = audited(stored_logs(configs), keys).problems
        if not problems or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    assert not problems, "the servers' audit logs disagree:\n" + "\n".join(problems)


def rewrite_lines(path: Path, change) -> bytes:
    """Replace the log's lines with change(lines) (a list of bytes without newlines); returns
    the original content, to put back."""
    original = path.read_bytes()
    lines = original.split(b"\n")[:-1]
    path.write_bytes(b"".join(line + b"\n" for line in change(lines)))
    return original
