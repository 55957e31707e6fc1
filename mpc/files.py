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


class SecretFileError(ValueError):
    """A secret key file that group or others could read."""


def read_secret(path: Path) -> bytes:
    """A secret key file's bytes; one open to group or others is refused (as ssh does):
    whoever could read it could act as its owner."""
    mode = os.stat(path).st_mode
    if mode & 0o077:
        raise SecretFileError(f"{path} is open to group or others (mode {mode & 0o777:04o}); "
                              f"run chmod 600 {path}")
    return path.read_bytes()


def write_secret(path: Path, data: bytes) -> None:
    """Create a file of mode 0600 (never readable by others, not even for a moment) under a
    temporary name and rename it into place, so an older file's mode cannot carry over."""
    aside = path.parent / f".{path.name}.{os.getpid()}"
    handle = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "wb") as file:
        file.write(data)
    os.replace(aside, path)
