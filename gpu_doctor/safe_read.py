"""Reads that cannot hang: the probes' reads of /sys, /proc and /dev, and of small settings files.

A sysfs attribute of a wedged driver never answers, a FIFO standing where a file was expected blocks its
reader forever, and /dev/zero never ends. So a file is opened without blocking (O_NONBLOCK: a FIFO opens at
once), refused unless it is a regular file (sysfs and procfs attributes are), read up to a size cap, and the
whole read runs in a helper thread that the caller waits for only so long. A read that does not answer in
time leaves that thread behind (a daemon: it never keeps the process alive) and raises TimeoutError; later
reads in the same folder (the same wedged device) fail at once instead of waiting again.
"""

from __future__ import annotations

import errno
import os
import stat
import threading

READ_TIMEOUT_S = 2.0  # a sysfs or procfs attribute answers in microseconds; a wedged driver never does
MAX_BYTES = 1 << 20  # the probes' files are a line or a page (/proc/cpuinfo of 256 cores: about 300 KB)
_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}  # fmt: skip
_stalled: set[str] = set()  # folders where a read did not answer in time


def read_bytes(
    path: str | os.PathLike, max_bytes: int = MAX_BYTES, timeout_s: float = READ_TIMEOUT_S
) -> bytes:
    """The content of the regular file `path`; OSError when it is not one (a FIFO, a device), when it holds
    more than `max_bytes` (EFBIG), or when it does not answer within `timeout_s` (TimeoutError)."""
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder in _stalled:
        raise TimeoutError(errno.ETIMEDOUT, "an earlier read in this folder did not answer", path)
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["data"] = _read(path, max_bytes)
        except BaseException as exc:  # handed to the caller
            outcome["error"] = exc

    reader = threading.Thread(target=work, name=f"read {path}", daemon=True)
    reader.start()
    reader.join(timeout_s)
    if reader.is_alive():
        _stalled.add(folder)
        raise TimeoutError(errno.ETIMEDOUT, f"no answer within {timeout_s:g} s", path)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["data"]  # type: ignore[return-value]


def read_text(path: str | os.PathLike, max_bytes: int = MAX_BYTES, timeout_s: float = READ_TIMEOUT_S) -> str:
    """read_bytes as text (undecodable bytes replaced), without surrounding whitespace."""
    return read_bytes(path, max_bytes, timeout_s).decode(errors="replace").strip()


def _read(path: str, max_bytes: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
            raise OSError(errno.EINVAL, f"{kind}, not a regular file: refused without reading", path)
        chunks, size = [], 0
        while chunk := os.read(fd, min(1 << 16, max_bytes + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise OSError(errno.EFBIG, f"larger than {max_bytes} bytes", path)
        return b"".join(chunks)
    finally:
        os.close(fd)
