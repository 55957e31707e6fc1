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
