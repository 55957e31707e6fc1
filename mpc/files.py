"""Durable files: what a server keeps (shares, correlations) survives a crash whole or not at
all, which takes an fsync of the folder after a rename."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_UMASK = 0o077


def private_files() -> None:
    """From now on this process creates files 0600 and folders 0700 (shares, catalogs,
    ledgers, job outputs, correlations): a server's and the dealer's data are theirs alone."""
    os.umask(PRIVATE_UMASK)


def fsync_dir(path: Path) -> None:
    """Make a rename (or a new file) in this folder durable."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
