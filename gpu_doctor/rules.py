"""The GPU compatibility rules, applied to facts; the facts themselves live in rules.toml beside this file.

Standard library only, and runnable as a script, so that Ansible's preflight can apply the same rules on the
controller without this project's environment:

    python3 gpu_doctor/rules.py preflight --lock uv.lock --driver-branch 580 [--native-code]

prints one JSON object ({"ok": ..., "message": ..., ...}) and exits 0. The Makefile asks it which extras of
the lock this machine needs (the GPU set when the hardware layer's rule sees an NVIDIA GPU), before any
environment exists:

    python3 gpu_doctor/rules.py extras [--why]     # prints "jax gpu" or "jax"; --why: the reason on stderr
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:
    from gpu_doctor import exit_codes
    from gpu_doctor.safe_read import read_text
except ImportError:  # run as a script (the Makefile, Ansible's controller; maybe isolated, -I): by their path
    import importlib.util

    def _sibling(name: str) -> Any:
        spec = importlib.util.spec_from_file_location(f"_{name}", Path(__file__).with_name(f"{name}.py"))
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        return module

    exit_codes = _sibling("exit_codes")
    read_text = _sibling("safe_read").read_text

RULES_FILE = Path(__file__).resolve().with_name("rules.toml")


@functools.cache
def rules() -> dict[str, Any]:
    with RULES_FILE.open("rb") as fh:
        return tomllib.load(fh)


def recommended_branch() -> int:
    """The driver branch this project provisions and recommends (rules.toml [driver])."""
    return int(rules()["driver"]["recommended_branch"])


def version_tuple(text: Any) -> tuple[int, ...] | None:
    """ "12.5.1" -> (12, 5, 1); "550.54.15" -> (550, 54, 15); None when there is no number."""
    if isinstance(text, int | float):
        text = str(text)
    if not isinstance(text, str):
        return None
    found = re.findall(r"\d+", text)
    return tuple(int(x) for x in found) if found else None


def major_minor(text: Any) -> str | None:
    v = version_tuple(text)
    return None if v is None else f"{v[0]}.{v[1] if len(v) > 1 else 0}"


def cuda_from_int(value: Any) -> str | None:
    """CUDA's integer form (cuDriverGetVersion, NVML): 12040 -> "12.4"."""
    if not isinstance(value, int) or value <= 0:
        return None
    return f"{value // 1000}.{(value % 1000) // 10}"


# --- Framework builds ---------------------------------------------------------------------------------------
def framework_rules(framework: str, version: str | None = None) -> dict[str, Any]:
    """The rules entry of a framework; for TensorFlow, of its major.minor release (empty if unknown)."""
    entry = rules()["frameworks"].get(framework, {})
    if framework == "tensorflow":
        return dict(entry.get(major_minor(version) or "", {}))
    return dict(entry)


def _arch(entry: str) -> tuple[str, int, int] | None:
    # "sm_86", "compute_90", "sm_90a", "sm_120" -> ("sm", 8, 6), ("compute", 9, 0), ("sm", 12, 0)
    m = re.fullmatch(r"(sm|compute)_(\d+)(\d)[a-z]?", entry.strip())
    return (m.group(1), int(m.group(2)), int(m.group(3))) if m else None


def code_for(cc: str, archs: list[str]) -> str | None:
    """How a build runs on compute capability ``cc``: "native" (SASS), "ptx" (JIT), or None (it cannot).

    A cubin for sm_XY runs on the same major with minor >= Y; PTX compute_XY is JIT-compiled by the driver for
    any GPU of capability >= X.Y (CUDA C++ Programming Guide, "Binary Compatibility", "PTX Compatibility").
    """
    version = version_tuple(cc)
    if version is None or len(version) < 2:
        return None
    major, minor = version[:2]
    parsed = [a for a in (_arch(e) for e in archs) if a]
    if any(kind == "sm" and ma == major and mi <= minor for kind, ma, mi in parsed):
        return "native"
    if any(kind == "compute" and (ma, mi) <= (major, minor) for kind, ma, mi in parsed):
        return "ptx"
    return None


def _within(value: tuple[int, ...] | None, low: str | None, below: str | None) -> bool:
    """low <= value < below, on major.minor ("13" is 13.0); an unknown value is in no range."""

    def mm(v: tuple[int, ...]) -> tuple[int, int]:
        return (v[0], v[1] if len(v) > 1 else 0)

    if value is None:
        return False
    lo, hi = version_tuple(low), version_tuple(below)
    return (lo is None or mm(value) >= mm(lo)) and (hi is None or mm(value) < mm(hi))


def known_broken(
    framework: str, version: str | None, cc: str, archs: list[str], build_cuda: str | None = None
) -> dict[str, str] | None:
    """A reported-broken combination of this framework build and GPU generation (rules.toml [[known_broken]]):
    {"id", "cause", "remedy", "source"}; None when no entry matches."""
    cc_version, cuda_version = version_tuple(cc), version_tuple(build_cuda)
    if cc_version is None or len(cc_version) < 2:
        return None
    for entry in rules().get("known_broken", []):
        if framework not in entry["framework"] or not _within(
            cc_version, entry.get("cc_min"), entry.get("cc_below")
        ):
            continue
        by_cuda = "build_cuda_min" in entry or "build_cuda_below" in entry
        if by_cuda and not _within(cuda_version, entry.get("build_cuda_min"), entry.get("build_cuda_below")):
            continue
        if any(a.startswith(entry.get("unless_archs_include", "\0")) for a in archs):
            continue
        values = {"framework": framework, "version": version or "?", "cc": cc, "cuda": build_cuda or "?"}
        return {
            "id": entry["id"],
            "cause": entry["cause"].format(**values),
            "remedy": entry["remedy"].format(**values),
            "source": entry["source"],
        }
    return None


# --- The driver and CUDA ------------------------------------------------------------------------------------
def min_driver_for_cuda(cuda: str) -> str | None:
    """Oldest driver that fully supports CUDA ``cuda`` (major.minor), from the release notes' table 3."""
    table = rules()["cuda_driver"]["toolkit_min_driver"]
    wanted = version_tuple(major_minor(cuda))
    if wanted is None:
        return None
    # An unlisted minor (12.7) needs what the next listed release needs.
    candidates = sorted((version_tuple(k), v) for k, v in table.items())
    for key, driver in candidates:
        if key is not None and key >= wanted:
            return driver
    return None


def min_driver_for_major(cuda: str) -> str | None:
    """Oldest driver of CUDA ``cuda``'s major release (minor-version compatibility, table 2)."""
    v = version_tuple(cuda)
    return None if v is None else rules()["cuda_driver"]["major_min_driver"].get(str(v[0]))


def ptx_isa(cuda: str) -> str | None:
    """The PTX ISA version that CUDA release ``cuda`` emits."""
    table = rules()["cuda_driver"]["ptx_isa"]
    wanted = version_tuple(major_minor(cuda))
    if wanted is None:
        return None
    known = [(version_tuple(k), v) for k, v in table.items()]
    older = [v for k, v in sorted(known) if k is not None and k <= wanted]
    return older[-1] if older else None


def driver_verdict(driver_cuda: str | None, build_cuda: str | None, needs_ptx: bool) -> dict[str, Any]:
    """Can a driver that reports CUDA ``driver_cuda`` run a build made with ``build_cuda``?

    Returns {"ok": bool | None, "why": str, "needs": "driver >= ..."}; ok is None when a version is unknown.
    """
    drv, build = version_tuple(driver_cuda), version_tuple(build_cuda)
    if drv is None or build is None:
        return {
            "ok": None,
            "why": f"cannot compare driver CUDA {driver_cuda!r} with build CUDA {build_cuda!r}",
        }
    if drv[0] < build[0]:
        need = min_driver_for_major(build_cuda) or "?"
        return {
            "ok": False,
            "needs": f"a driver for CUDA {build[0]}.x (>= {need})",
            "min_driver": need,
            "why": f"the driver supports CUDA {driver_cuda}, the build needs CUDA {build[0]}.x",
        }
    if drv[:2] < build[:2] and needs_ptx:
        need = min_driver_for_cuda(build_cuda) or "?"
        return {
            "ok": False,
            "needs": f"a driver for CUDA >= {major_minor(build_cuda)} (>= {need})",
            "min_driver": need,
            "why": f"the GPU runs the build's PTX (CUDA {build_cuda}) and the driver JIT-compiles PTX "
            f"only up to its own CUDA {driver_cuda}: minor-version compatibility does not cover PTX",
        }
    if drv[:2] < build[:2]:
        return {
            "ok": True,
            "why": f"driver CUDA {driver_cuda} < build CUDA {build_cuda}: runs through minor-version "
            "compatibility (the build has native code for this GPU)",
        }
    return {"ok": True, "why": f"driver CUDA {driver_cuda} >= build CUDA {build_cuda}"}


def branch_verdict(branch: int, build_cuda: str, needs_ptx: bool = True) -> dict[str, Any]:
    """Can a driver branch (e.g. 570) run a build made with ``build_cuda``? For provisioning, before a GPU is
    seen: ``needs_ptx`` assumes the worst case (a GPU running the build's PTX, like an H100 with TF 2.21)."""
    needed = min_driver_for_cuda(build_cuda) if needs_ptx else min_driver_for_major(build_cuda)
    needed_branch = version_tuple(needed)[0] if needed else 0
    ok = branch >= needed_branch
    reason = (
        "its PTX JIT (GPUs without native code in the build, e.g. H100)"
        if needs_ptx
        else "minor-version compatibility"
    )
    return {
        "ok": ok,
        "min_branch": needed_branch,
        "min_driver": needed,
        "message": (
            f"driver branch {branch} runs CUDA {build_cuda} ({reason} needs >= {needed})"
            if ok
            else f"driver branch {branch} is too old for CUDA {build_cuda}: {reason} needs driver "
            f">= {needed} (branch {needed_branch} or newer)"
        ),
    }


# --- Error codes -------------------------------------------------------------------------------------------
def nvml_init_error(name: str, where: str = "host") -> dict[str, str]:
    """Cause and remedy of an NVML start-up error (nvidia-ml-py class name); ``where``: host|container|wsl."""
    entry = rules()["nvml_init"].get(name)
    if entry is None:
        return {"cause": f"NVML failed to start ({name})", "remedy": "sudo dmesg | grep -i nvrm; reboot"}
    prefix = "" if where == "host" else f"{where}_"
    return {
        "cause": entry.get(f"{prefix}cause", entry["cause"]),
        "remedy": entry.get(f"{prefix}remedy", entry["remedy"]),
    }


def cuda_error(code: int) -> dict[str, str]:
    entry = rules()["cuda_errors"].get(str(code))
    if entry is None:
        return {
            "name": f"CUresult {code}",
            "cause": f"the CUDA driver returned error {code}",
            "remedy": "sudo dmesg | grep -i nvrm; reboot",
        }
    return dict(entry)


def framework_error(text: str) -> dict[str, Any] | None:
    """The first rules.toml [[framework_errors]] entry whose needle is in ``text`` (case-insensitive), with
    the needle that matched ("needle")."""
    low = text.lower()
    for entry in rules()["framework_errors"]:
        hit = next((n for n in entry["needles"] if n.lower() in low), None)
        if hit is not None:
            return {**entry, "needle": hit}
    return None


def blame_for_error(text: str) -> str | None:
    """Which layer a framework error message points at (rules.toml [[framework_errors]])."""
    entry = framework_error(text)
    return entry["blame"] if entry else None


def timeouts(overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """The probes' time limits in seconds (rules.toml [timeouts]), with ``overrides`` (the tests shorten
    them)."""
    return {**{k: float(v) for k, v in rules()["timeouts"].items()}, **dict(overrides or {})}


def xid(code: int) -> dict[str, str]:
    """What an Xid error means and how bad it is (rules.toml [xid.codes]); unknown codes are warnings."""
    entry = rules()["xid"]["codes"].get(str(code))
    if entry is None:
        return {"severity": "warn", "meaning": "see NVIDIA's Xid catalog (docs.nvidia.com/deploy/xid-errors)"}
    return dict(entry)


def hostile_env_vars(environ: Mapping[str, str]) -> list[str]:
    """Environment variables that inject tools into every CUDA program (DCGM treats them as failures)."""
    return [f"{name}={environ[name]!r}" for name in rules()["environment"]["dcgm_hostile"] if name in environ]


def hides_all_gpus(value: str | None) -> bool:
    return value is not None and value.strip() in rules()["environment"]["hides_all_gpus"]


# --- The hardware rule and the environment it needs ---------------------------------------------------------
def is_nvidia_gpu(vendor: str | None, pci_class: str | None) -> bool:
    """A PCI function that is an NVIDIA GPU (rules.toml [hardware]: vendor 0x10de, a display class)."""
    hw = rules()["hardware"]
    return (vendor or "").strip().lower() == hw["nvidia_vendor"] and (pci_class or "").strip().startswith(
        hw["display_class_prefix"]
    )


def _read(path: Path) -> str | None:
    """A sysfs file's text, bounded in time and size: a wedged driver must not hang `make` (safe_read.py)."""
    try:
        return read_text(path)
    except OSError:
        return None


def gpu_seen(root: Path = Path("/")) -> str | None:
    """Why this machine has an NVIDIA GPU, as the doctor's hardware layer decides it (None: it has none)."""
    devices = root / "sys/bus/pci/devices"
    try:
        functions = sorted(devices.iterdir())
    except OSError:
        functions = []
    gpus = [d for d in functions if is_nvidia_gpu(_read(d / "vendor"), _read(d / "class"))]
    if gpus:
        ids = ", ".join(f"{d.name} (10de:{(_read(d / 'device') or '?').removeprefix('0x')})" for d in gpus)
        return f"NVIDIA GPU on the PCI bus: {ids}"
    if (root / "dev/dxg").exists():
        return "WSL2's /dev/dxg"
    nodes = sorted(p.name for p in (root / "dev").glob("nvidia[0-9]*"))
    return f"device nodes /dev/{', /dev/'.join(nodes)}" if nodes else None


def extras_for(gpu: bool) -> list[str]:
    """The extras of pyproject.toml a machine installs (rules.toml [extras]): the GPU set or the CPU set."""
    return list(rules()["extras"]["gpu" if gpu else "cpu"])


# --- Ansible's preflight ------------------------------------------------------------------------------------
def locked_version(lock_text: str, package: str) -> str | None:
    found = re.search(rf'name = "{re.escape(package)}"\nversion = "([^"]+)"', lock_text)
    return found.group(1) if found else None


def preflight(lock: Path, branch: int, native_code: bool = False) -> dict[str, Any]:
    """The driver-branch rule for the TensorFlow version that uv.lock pins. By default the worst case (a GPU
    that runs the build's PTX); ``native_code``: the user says every GPU has native code in the build (its
    ``archs``), so minor-version compatibility is enough (Debian 12's branch 535 on an Ampere or Ada GPU)."""
    tf = locked_version(lock.read_text(), "tensorflow")
    build = framework_rules("tensorflow", tf)
    if not build.get("cuda"):
        return {
            "ok": False,
            "tensorflow": tf,
            "message": f"TensorFlow {tf} (uv.lock) is not in gpu_doctor/rules.toml [frameworks.tensorflow]: "
            "add the CUDA version it was built with",
        }
    verdict = branch_verdict(branch, build["cuda"], needs_ptx=not native_code)
    native = branch_verdict(branch, build["cuda"], needs_ptx=False)
    return {
        **verdict,
        "native_code": native_code,
        "min_branch_native": native["min_branch"],
        "archs": build.get("archs", []),
        "tensorflow": tf,
        "cuda": build["cuda"],
        "cuda_major_minor": major_minor(build["cuda"]),
        "recommended_branch": recommended_branch(),
        "message": f"TensorFlow {tf} (uv.lock, built with CUDA {build['cuda']}): {verdict['message']}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gpu_doctor/rules.py", description="Apply the GPU rules (for Ansible)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    pre = sub.add_parser("preflight", help="can this driver branch run the locked TensorFlow's CUDA?")
    pre.add_argument("--lock", type=Path, required=True)
    pre.add_argument("--driver-branch", type=int, required=True)
    pre.add_argument(
        "--native-code",
        action="store_true",
        help="every GPU has native code (sm_XY) in the build: minor-version compatibility is enough",
    )
    extras = sub.add_parser("extras", help="the extras of uv.lock this machine needs: GPU set or CPU set")
    extras.add_argument("--why", action="store_true", help="say why on stderr")
    extras.add_argument("--set", choices=("gpu", "cpu"), help="print this set, whatever the machine has")
    args = parser.parse_args(argv)
    if args.command == "extras":
        # The doctor's test hook (GPU_DOCTOR_ROOT) points it at a staged tree, as it does the hardware layer.
        why = gpu_seen(Path(os.environ.get("GPU_DOCTOR_ROOT") or "/"))
        print(" ".join(extras_for(args.set == "gpu" if args.set else why is not None)))
        if args.why:
            print(f"extras: {why or 'no NVIDIA GPU found'}", file=sys.stderr)
        return exit_codes.EXIT_OK
    try:
        result = preflight(args.lock, args.driver_branch, args.native_code)
    except OSError as err:
        print(f"rules.py: error: --lock {args.lock}: {err.strerror}", file=sys.stderr)
        return exit_codes.EXIT_BAD_INPUT
    print(json.dumps(result))
    return exit_codes.EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
