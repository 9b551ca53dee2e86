"""A small file system that fills up: a tmpfs of a few kilobytes, mounted for one test and removed after it.

Mounting needs root (CI runs as root); elsewhere the tests that need it skip, saying why.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import require, require_tool


@contextlib.contextmanager
def small_tmpfs(size: str) -> Iterator[Path]:
    """A fresh tmpfs of `size` ("4k", "64k"), unmounted and removed afterwards whatever happens."""
    require(os.geteuid() == 0, "root, to mount a small tmpfs (CI runs as root)")
    require_tool("mount")
    where = Path(tempfile.mkdtemp(prefix="kw-small-disk-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "kw-small-disk",
                              str(where)], capture_output=True, text=True)  # fmt: skip
    try:
        require(mounted.returncode == 0, f"mount -t tmpfs ({mounted.stderr.strip()})")
        yield where
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", str(where)], check=True)
        where.rmdir()


def fill(folder: Path, leave: int = 0) -> None:
    """Fill the file system of `folder` until fewer than `leave` bytes are free."""
    with open(folder / "filler", "wb", buffering=0) as fh, contextlib.suppress(OSError):
        while os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize > leave:
            fh.write(b"\0" * 1024)
