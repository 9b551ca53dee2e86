"""An exclusive lock on a folder, held until the process ends: two runs (or two installs) never share one.

The lock is flock(2) on the folder itself: no lock file is left behind, and the kernel releases it when the
process dies, however it dies.
"""

import fcntl
import os
from pathlib import Path

from workloads.errors import InputError

_held: dict[Path, int] = {}  # folder -> open descriptor; kept open for the life of the process


def lock_folder(folder: Path, what: str) -> None:
    """Lock `folder` (which must exist) for this process, or raise InputError if another process holds it."""
    folder = Path(folder).resolve()
    if folder in _held:
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise InputError(f"{what} {folder}: cannot open it ({exc.strerror or exc})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise InputError(f"{what} {folder}: another process is using it (wait, or choose another)") from None
    _held[folder] = fd


def unlock_folder(folder: Path) -> None:
    fd = _held.pop(Path(folder).resolve(), None)
    if fd is not None:
        os.close(fd)
