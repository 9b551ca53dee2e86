"""Atomic file writes: a reader (or a Ctrl-C) never sees half a file."""

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)`, then rename the temporary file over `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix or ".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, new_file_mode())  # mkstemp makes 0600; results are shared like any other file
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)  # a full disk gets back what the half-written file took
        if isinstance(exc, OSError) and exc.errno is not None:  # name the file meant, not the temporary one
            raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
        raise
    return path


def make_writable_folder(folder: Path) -> None:
    """Create `folder` (and its parents) and prove a file can be written in it; OSError when not.

    The probe is a new file (mkstemp: O_EXCL), so a link planted under a known probe name cannot redirect it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
    os.close(fd)
    os.unlink(probe)


def new_file_mode() -> int:
    """The mode `open()` would give a new file (0666 less the umask), for files made with mkstemp (0600)."""
    return 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, data: Any) -> Path:
    """Write `data` as indented JSON, atomically. NaN and infinities become null (strict JSON)."""
    text = json.dumps(_finite(data), indent=2, sort_keys=False, default=str) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
