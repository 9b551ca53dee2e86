"""The operating-system boundary of the diagnosis: every file, library, module and environment variable the
probes read goes through a ``Boundary``, so the tests stage a failure by faking only this boundary and then
run the real probing code.

A real machine is ``Boundary()``. The test hook ``GPU_DOCTOR_ROOT=DIR`` points the file-system probes (sys,
proc, dev, lib/modules) at a staged tree instead of ``/``; every report then says so, loudly.
"""

from __future__ import annotations

import ctypes
import errno
import importlib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from gpu_doctor import loader
from gpu_doctor.safe_read import read_bytes

ROOT_HOOK = "GPU_DOCTOR_ROOT"


def import_pynvml() -> ModuleType:
    import pynvml  # the official nvidia-ml-py package provides this module

    return pynvml


def open_libcuda() -> Any:
    """The driver's CUDA library (raises OSError when it cannot be loaded)."""
    return ctypes.CDLL("libcuda.so.1")


class InstalledMetadata:
    """Installed Python distributions (importlib.metadata), without importing them."""

    def version(self, name: str) -> str | None:
        try:
            return importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            return None

    def requires(self, name: str) -> list[str]:
        try:
            return list(importlib_metadata.requires(name) or [])
        except importlib_metadata.PackageNotFoundError:
            return []

    def files(self, name: str) -> list[Path]:
        try:
            dist = importlib_metadata.distribution(name)
        except importlib_metadata.PackageNotFoundError:
            return []
        return [Path(str(dist.locate_file(f))) for f in (dist.files or [])]


def _dmesg_line(record: str) -> str:
    """A /dev/kmsg record as dmesg prints it: "[seconds since boot] message"."""
    head, _, message = record.partition(";")
    fields = head.split(",")
    if len(fields) >= 3 and fields[2].isdigit():
        return f"[{int(fields[2]) / 1e6:.6f}] {message}"
    return message or record


@dataclass
class Boundary:
    """Where the probes look. Each field is one kind of OS access; the tests replace exactly these."""

    root: Path = Path("/")
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    nvml: Callable[[], Any] = import_pynvml  # returns the NVML module (raises ImportError)
    cuda: Callable[[], Any] = open_libcuda  # returns the libcuda handle (raises OSError)
    load_library: Callable[[str], Any] = ctypes.CDLL  # dlopen a library by path (raises OSError)
    elf: Callable[[str], loader.Elf | None] = loader.read_elf  # a shared object's dynamic section (RUNPATH)
    ld_cache: Callable[[], dict[str, str]] = loader.ld_cache  # the loader's cache: soname -> path (ldconfig)
    file_exists: Callable[[str], bool] = os.path.exists  # where the loader looks for a library file
    metadata: Any = field(default_factory=InstalledMetadata)
    import_module: Callable[[str], ModuleType] = importlib.import_module
    python: str = sys.executable  # the interpreter of the framework's child process (gpu_doctor.child)
    python_path: tuple[str, ...] = ()  # put first on that child's sys.path (the tests' stand-in frameworks)
    timeouts: Mapping[str, float] = field(default_factory=dict)  # overrides of rules.toml [timeouts]
    prefix: Path = Path(sys.prefix)  # the Python environment the doctor runs in (its remedies name it)
    staged: bool = False  # True when ``root`` is a staged tree (test hook), not this machine
    stalls: list[str] = field(default_factory=list)  # files that did not answer in time (a wedged driver)

    def path(self, *parts: str | os.PathLike) -> Path:
        return self.root.joinpath(*parts)

    def read(self, *parts: str | os.PathLike) -> str | None:
        """A file's text without surrounding whitespace; None when it is missing, unreadable, not a regular
        file (a FIFO, /dev/zero) or does not answer in time (gpu_doctor.safe_read)."""
        data = self.read_bytes(*parts)
        return None if data is None else data.decode(errors="replace").strip()

    def read_bytes(self, *parts: str | os.PathLike) -> bytes | None:
        path = self.path(*parts)
        try:
            return read_bytes(path)
        except TimeoutError:
            self.stalls.append(str(path))
            return None
        except OSError:
            return None

    def exists(self, *parts: str) -> bool:
        return self.path(*parts).exists()

    def ld_library_path(self) -> list[str]:
        return [p for p in self.env.get("LD_LIBRARY_PATH", "").split(":") if p]

    def kernel_log(self, max_bytes: int) -> list[str] | None:
        """The kernel's log since boot (/dev/kmsg, else /var/log/kern.log), at most ``max_bytes``, each
        line as dmesg prints it ("[seconds since boot] message"); None when neither can be read
        (dmesg_restrict keeps /dev/kmsg from users). Never blocks: /dev/kmsg is read non-blocking up to its
        end."""
        for parts in (("dev", "kmsg"), ("var", "log", "kern.log")):
            try:
                fd = os.open(self.path(*parts), os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                continue
            chunks, size = [], 0
            try:
                while size < max_bytes:
                    try:
                        chunk = os.read(fd, 65536)
                    except BlockingIOError:
                        break  # the end of /dev/kmsg
                    except OSError as err:
                        if err.errno == errno.EPIPE:  # /dev/kmsg: a record was overwritten while we read
                            continue
                        break
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
            finally:
                os.close(fd)
            lines = b"".join(chunks).decode(errors="replace").splitlines()
            if parts[-1] == "kmsg":  # its records are "prio,seq,usec,flags;message": as dmesg prints them
                lines = [_dmesg_line(line) for line in lines]
            return lines
        return None


def current(env: Mapping[str, str] | None = None) -> Boundary:
    """This machine, or the staged tree that the ``GPU_DOCTOR_ROOT`` test hook names."""
    env = os.environ if env is None else env
    staged = env.get(ROOT_HOOK)
    if staged:
        return Boundary(root=Path(staged), env=env, staged=True)
    return Boundary(env=env)
