"""A compute server that kills itself (SIGKILL, as kill -9) at a chosen point of the upload or
the withdrawal protocol: what tests/support/upload_kills.py and withdraw_kills.py start instead
of `twofold server run`.

    python -m tests.support.crashing_server --config server0.toml --crash-at record
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import os
import signal
from pathlib import Path

from twofold.mpc.files import private_files
from twofold.servers import storage as server_storage
from twofold.servers.check_queue import CheckQueue
from twofold.servers.config import load_server_config
from twofold.servers.server import Server
from twofold.servers.storage import StagedUpload, Storage
from twofold.servers.uploads import Uploads
from twofold.servers.withdrawal import Withdrawal

# name -> (owner of the function, its name, "before" or "after" the call, which call)
CRASH_POINTS = {
    "stage": (Storage, "stage", "after", 1),  # begin: staging folder made, not acknowledged
    "chunk1": (StagedUpload, "append", "after", 1),  # first chunk written
    "chunk2": (StagedUpload, "append", "after", 2),  # second chunk written
    "fsync": (StagedUpload, "close_durably", "after", 1),  # files durable, still in staging
    "rename": (server_storage, "fsync_dir", "before", 1),  # moved to tables/, no catalog row
    "record": (Storage, "commit", "after", 1),  # catalog row written, commit not acknowledged
    "activate": (Uploads, "activate", "before", 1),  # an owner's activation arrived
    "peer_check": (Uploads, "peer_check", "before", 1),  # the peer's question arrived
    "check": (CheckQueue, "_run", "before", 1),  # its side of the check of the values began
    "live1": (Storage, "make_live", "after", 1),  # first time it made the upload live
    "live2": (Storage, "make_live", "after", 2),  # second time
    # withdrawal (servers/withdrawal.py), in its order
    "withdraw": (Withdrawal, "withdraw", "before", 1),  # the owner's request arrived
    "mark": (Storage, "mark_withdrawn", "after", 1),  # marked, live pointer gone
    "files": (Storage, "remove_files", "after", 1),  # shares deleted, catalog rows kept
    "rows": (Storage, "forget_versions", "after", 1),  # catalog rows deleted, not acknowledged
    "lift": (Storage, "lift_withdrawal", "after", 1),  # mark lifted, not acknowledged
}


def arm(point: str) -> None:
    """Wrap the function of `point` so that its n-th call kills this process."""
    owner, name, when, nth = CRASH_POINTS[point]
    original, calls = getattr(owner, name), 0

    def tick(moment: str) -> None:
        nonlocal calls
        if moment == when:
            calls += 1
            if calls == nth:
                os.kill(os.getpid(), signal.SIGKILL)

    if inspect.iscoroutinefunction(original):
        @functools.wraps(original)
        async def wrapper(*args, **kwargs):
            tick("before")
            result = await original(*args, **kwargs)
            tick("after")
            return result
    else:
        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            tick("before")
            result = original(*args, **kwargs)
            tick("after")
            return result
    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--crash-at", choices=sorted(CRASH_POINTS), required=True)
    args = parser.parse_args()
    arm(args.crash_at)
    private_files()  # as `twofold server run`
    asyncio.run(Server(load_server_config(args.config)).serve())


if __name__ == "__main__":
    main()
