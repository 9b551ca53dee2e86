"""The dynamic loader's rules, in Python: where `dlopen("libcusolver.so.11")` called from a framework's
library finds the file. Standard library only (it also runs before TensorFlow's import, see ``preload``).

glibc's order for a name without a slash (ld.so(8), "Shared object dependencies"): the objects already loaded
(by soname), the caller's DT_RPATH (only when it has no DT_RUNPATH), LD_LIBRARY_PATH, the caller's DT_RUNPATH
(``$ORIGIN`` = the caller's folder), /etc/ld.so.cache, then the system folders. For dlopen the caller is the
object that calls it: TensorFlow's loader (tsl::internal::DsoLoader) lives in libtensorflow_framework.so.2,
so that file's RUNPATH is the one that counts. TensorFlow 2.21's RUNPATH there names nvidia/{cublas, cudnn,
cufft, cusparse, nccl, cuda_runtime, cuda_cupti, nvshmem}/lib but not nvidia/cusolver/lib (readelf -d on the
wheel), so without help `libcusolver.so.11` is not found on bare metal unless LD_LIBRARY_PATH names it.

The help: ``preload(framework)`` loads, by absolute path, each library the framework dlopens by soname that
its search path cannot find but its nvidia-* wheel has. A later dlopen of that soname finds the loaded object
first. JAX's CUDA plugin does the same for its libraries (jax_plugins/xla_cuda12, ``_load_nvidia_libraries``).
The project's wheel installs a ``.pth`` hook (keras_workstation_preload.pth) that calls it when `tensorflow`
is first imported, in every Python process of an environment made from the lock: nobody sets LD_LIBRARY_PATH.
KERAS_WORKSTATION_PRELOAD=0 turns it off (the doctor then reports what the framework would miss).
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import struct
import sysconfig
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The hook file the project's wheel puts into site-packages, and the switch that turns it off.
HOOK_FILE = "keras_workstation_preload.pth"
HOOK_SWITCH = "KERAS_WORKSTATION_PRELOAD"

_PT_LOAD, _PT_DYNAMIC = 1, 2
_DT_NEEDED, _DT_STRTAB, _DT_SONAME, _DT_RPATH, _DT_RUNPATH = 1, 5, 14, 15, 29
# /etc/ld.so.cache entries: the architecture bits of an entry's flags (glibc's FLAG_X8664_LIB64 etc.).
_CACHE_MAGIC = b"glibc-ld.so.cache1.1"
_CACHE_ARCH = {"x86_64": 0x0300, "aarch64": 0x0A00}


@dataclass(frozen=True)
class Elf:
    """The dynamic section of a shared object: what the loader reads."""

    soname: str | None = None
    needed: tuple[str, ...] = ()
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()


def read_elf(path: str | Path) -> Elf | None:
    """The dynamic section of a 64-bit little-endian ELF file (None: not one, or unreadable)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                return None
            phoff, phentsize, phnum = (
                struct.unpack_from("<Q", head, 32)[0],
                *struct.unpack_from("<HH", head, 54),
            )
            fh.seek(phoff)
            table = fh.read(phentsize * phnum)
            segments = [struct.unpack_from("<IIQQQQ", table, i * phentsize) for i in range(phnum)]
            dynamic = next((s for s in segments if s[0] == _PT_DYNAMIC), None)
            if dynamic is None:
                return Elf()
            fh.seek(dynamic[2])
            raw = fh.read(dynamic[5])
            entries = [struct.unpack_from("<qQ", raw, i) for i in range(0, len(raw) - 15, 16)]
            strtab = next((v for tag, v in entries if tag == _DT_STRTAB), None)
            offset = _file_offset(strtab, [s for s in segments if s[0] == _PT_LOAD])
            if offset is None:
                return Elf()

            def text(value: int) -> str:  # a NUL-terminated string (TensorFlow's RUNPATH is over 10 kB)
                fh.seek(offset + value)
                chunks = []
                while chunk := fh.read(4096):
                    chunks.append(chunk.split(b"\0", 1)[0])
                    if len(chunks[-1]) < len(chunk):
                        break
                return b"".join(chunks).decode(errors="replace")

            def paths(tag: int) -> tuple[str, ...]:
                return tuple(p for v in (v for t, v in entries if t == tag) for p in text(v).split(":") if p)

            sonames = [text(v) for tag, v in entries if tag == _DT_SONAME]
            return Elf(
                soname=sonames[0] if sonames else None,
                needed=tuple(text(v) for tag, v in entries if tag == _DT_NEEDED),
                rpath=paths(_DT_RPATH),
                runpath=paths(_DT_RUNPATH),
            )
    except (OSError, struct.error):
        return None


def _file_offset(address: int | None, loads: list[tuple[int, ...]]) -> int | None:
    """The file offset of a virtual address (DT_STRTAB is an address), through the PT_LOAD segments."""
    if address is None:
        return None
    for _, _, offset, vaddr, _, filesz in loads:
        if vaddr <= address < vaddr + filesz:
            return address - vaddr + offset
    return None


def ld_cache(path: str | Path = "/etc/ld.so.cache") -> dict[str, str]:
    """soname -> path from the loader's cache (what `ldconfig -p` lists), for this machine's architecture."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return {}
    start = data.find(_CACHE_MAGIC)
    if start < 0:
        return {}
    try:
        nlibs = struct.unpack_from("<I", data, start + 20)[0]
        arch = _CACHE_ARCH.get(platform.machine())
        found: dict[str, str] = {}
        for i in range(nlibs):
            flags, key, value = struct.unpack_from("<iII", data, start + 48 + 24 * i)
            if arch is not None and flags & 0xFF00 != arch:
                continue
            name, where = (data[start + o : data.index(b"\0", start + o)].decode() for o in (key, value))
            found.setdefault(name, where)
        return found
    except (struct.error, ValueError, UnicodeDecodeError):
        return {}


def system_dirs() -> list[str]:
    """The loader's last resort (`ld.so --list-diagnostics`: path.system_dirs), Debian's multiarch first."""
    triplet = sysconfig.get_config_var("MULTIARCH") or f"{platform.machine()}-linux-gnu"
    return [f"/lib/{triplet}", f"/usr/lib/{triplet}", "/lib64", "/usr/lib64", "/lib", "/usr/lib"]


def expand_origin(entry: str, origin: Path) -> str:
    return re.sub(r"\$(ORIGIN\b|\{ORIGIN\})", str(origin), entry)


@dataclass
class SearchPath:
    """Where a dlopen by soname from ``caller`` looks, in order: (folder, where the folder comes from)."""

    caller: str | None
    folders: list[tuple[str, str]] = field(default_factory=list)
    cache: dict[str, str] = field(default_factory=dict)

    def find(self, soname: str, exists: Callable[[str], bool] = os.path.exists) -> tuple[str, str] | None:
        """(path, origin) of ``soname``, as the loader would find it; None: dlopen would fail."""
        for folder, origin in self.folders:
            candidate = os.path.join(folder, soname)
            if exists(candidate):
                return os.path.normpath(candidate), origin
        if soname in self.cache:
            return self.cache[soname], "the loader cache (ldconfig)"
        for folder in system_dirs():
            candidate = os.path.join(folder, soname)
            if exists(candidate):
                return candidate, f"the system folder {folder}"
        return None

    def describe(self) -> str:
        name = Path(self.caller).name if self.caller else "the process"
        return f"LD_LIBRARY_PATH, the RUNPATH of {name}, the loader cache, the system folders"


def search_path(
    caller: str | None, elf: Elf | None, env: Mapping[str, str], cache: dict[str, str]
) -> SearchPath:
    """The search path of a dlopen by soname called from the shared object ``caller`` (read as ``elf``)."""
    folders: list[tuple[str, str]] = []
    origin = Path(caller).parent if caller else None
    if elf and origin and elf.rpath and not elf.runpath:
        folders += [(expand_origin(p, origin), f"the RPATH of {Path(caller).name}") for p in elf.rpath]
    folders += [(p, "LD_LIBRARY_PATH") for p in env.get("LD_LIBRARY_PATH", "").split(":") if p]
    if elf and origin:
        folders += [(expand_origin(p, origin), f"the RUNPATH of {Path(caller).name}") for p in elf.runpath]
    unique = list(dict.fromkeys(os.path.normpath(f) for f, _ in folders))  # the first place of each folder
    first = {}
    for folder, where in folders:
        first.setdefault(os.path.normpath(folder), where)
    return SearchPath(caller, [(f, first[f]) for f in unique], cache)


def soname_in(files: Iterable[Path], stem: str) -> Path | None:
    """The versioned library file ``stem``.N among a wheel's files (libcusolver.so -> libcusolver.so.11)."""
    pattern = re.compile(rf"^{re.escape(stem)}\.\d+$")
    return next((f for f in files if pattern.match(f.name)), None)


def hook_enabled(env: Mapping[str, str]) -> bool:
    return env.get(HOOK_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


# --- The preload (run by the .pth hook before TensorFlow's import) -----------------------------------------
def unreachable_wheel_libraries(
    framework: str, metadata: Any, env: Mapping[str, str], elf_reader: Callable[[str], Elf | None] = read_elf,
    cache: dict[str, str] | None = None,
) -> list[tuple[str, Path]]:  # fmt: skip
    """(soname, wheel file) of each library ``framework`` dlopens by soname that its search path cannot find
    but an installed nvidia-* wheel ships. Needs the rules (gpu_doctor.rules) and the packages' metadata."""
    from gpu_doctor import rules
    from gpu_doctor.build import installed_build

    build = installed_build(framework, metadata)
    caller = framework_library(build, metadata)
    if caller is None:
        return []
    path = search_path(str(caller), elf_reader(str(caller)), env, ld_cache() if cache is None else cache)
    wanted = set(rules.framework_rules(framework, build.version).get("dlopens", []))
    missing = []
    for key, entry, req in libraries_of(build.requirements):
        if key not in wanted or not req.installed:
            continue
        wheel = soname_in(metadata.files(req.package), entry["stem"])
        if wheel is not None and path.find(wheel.name) is None:
            missing.append((wheel.name, wheel))
    return missing


def libraries_of(requirements: list[Any]) -> list[tuple[str, dict[str, Any], Any]]:
    """(key, rules.toml [libraries.KEY], requirement) for each library the build's nvidia-* wheels provide."""
    from gpu_doctor import rules

    table = rules.rules()["libraries"]
    base = [
        (req, re.sub(r"-cu\d+$", "", req.package)) for req in requirements
    ]  # nvidia-cudnn-cu12 -> nvidia-cudnn
    return [(key, entry, req) for req, name in base for key, entry in table.items() if entry["wheel"] == name]


def framework_library(build: Any, metadata: Any) -> Path | None:
    """The installed file whose RUNPATH the framework's dlopen uses (rules.toml [frameworks.*].loader)."""
    from gpu_doctor import rules

    relative = rules.framework_rules(build.framework, build.version).get("loader")
    if not relative or not build.version:
        return None
    return next((f for f in metadata.files(build.framework) if f.as_posix().endswith(relative)), None)


def preload(framework: str = "tensorflow") -> list[str]:
    """Load by absolute path what ``framework``'s loader would miss (see the module's docstring)."""
    if not hook_enabled(os.environ):
        return []
    from gpu_doctor.system import InstalledMetadata

    loaded = []
    for soname, wheel in unreachable_wheel_libraries(framework, InstalledMetadata(), os.environ):
        try:
            ctypes.CDLL(str(wheel))
            loaded.append(soname)
        except OSError:
            pass  # the doctor's libraries layer names it; an import must never fail here
    return loaded
