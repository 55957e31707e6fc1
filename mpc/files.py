"""Durable files: what a server keeps (shares, correlations) survives a crash whole or not at
all, which takes an fsync of the folder after a rename."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename (or a new file) in this folder durable."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_secret(path: Path, data: bytes) -> None:
    """Create a file of mode 0600 (never readable by others, not even for a moment) under a
    temporary name and rename it into place, so an older file's mode cannot carry over."""
    aside = path.parent / f".{path.name}.{os.getpid()}"
    handle = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "wb") as file:
        file.write(data)
    os.replace(aside, path)
