"""A stand-in for nvidia-ml-py whose GPU never answers (tests only), put first on PYTHONPATH of a real
`python -m smoke_tests` run: nvmlInit works, the device count is 1, and every query of GPU 0 blocks, as
NVML does on a GPU whose firmware stopped answering (GSP RPC time-outs, Xid 119: each call waits ~45 s in
the kernel, NVIDIA/open-gpu-kernel-modules#446). The real module's error classes and constants are
re-exported."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

_here = str(Path(__file__).resolve().parent)
_spec = importlib.machinery.PathFinder.find_spec("pynvml", [p for p in sys.path if p not in ("", _here)])
_real = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_real)
for _name in dir(_real):
    if _name.startswith(("NVML_", "NVMLError", "nvmlClocksEventReason")):
        globals()[_name] = getattr(_real, _name)


def nvmlInit() -> None:
    return None


def nvmlShutdown() -> None:
    return None


def nvmlSystemGetDriverVersion() -> str:
    return "570.133.20"


def nvmlSystemGetNVMLVersion() -> str:
    return "12.570.133.20"


def nvmlSystemGetCudaDriverVersion() -> int:
    return 12080


def nvmlDeviceGetCount() -> int:
    return 1


def nvmlDeviceGetHandleByIndex(index: int) -> str:
    return f"handle{index}"


def __getattr__(name: str):  # every other query: the GPU does not answer
    if not name.startswith("nvmlDevice"):
        raise AttributeError(name)

    def hung(*args):
        time.sleep(3600)

    return hung
