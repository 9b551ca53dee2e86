"""pytest plugin for the smoke checks: pretend this CPU machine is a multi-GPU one, so that the multi-GPU
checks name a staged sick GPU or link the way they would name a real one.

The GPU doctor probes a staged workstation (tests/gpu_doctor/staging.py) with PRETEND_GPUS identical H100s
(default 8) and their NVML topology, PRETEND_TOPOLOGY: "nvswitch" (18 links each, as on an HGX board), "mesh"
(4 direct links between every pair) or "pcie". PRETEND_SICK stages one fault: "x8:GPU" (a link trained at x8
of x16) or "nvlink_down:GPU-GPU" (one NVLink between them down at both ends). The simulated JAX devices
(XLA_FLAGS=--xla_force_host_platform_device_count=N) stand in for those GPUs by position. Loaded into the
check process with PYTEST_ADDOPTS="-p tests.smoke.pretend_gpus" (faults: -p tests.smoke.multi_gpu_faults).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from gpu_doctor import system
from smoke_tests.multi_gpu import devices
from tests.gpu_doctor.staging import H100_NVML, FakeCuda, Machine
from tests.smoke.fake_nvml import FakeNvml, bus_id, topology
from tests.smoke.probe_here import pytest_configure  # noqa: F401 (the checks probe the staged machine)


def staged(root: Path, gpus: int, shape: str, sick: str) -> Machine:
    """A healthy H100 workstation grown to `gpus` GPUs joined as `shape`, with the `sick` fault."""
    m = Machine.healthy_h100(root)
    m.remove("sys/bus/pci/devices/0000:01:00.0")
    for i in range(gpus):
        m.pci_device(bus_id(i), "0x10de", "0x030200", "2330", "nvidia")
    m.device_nodes(gpus)
    links: dict = {}
    if shape == "nvswitch":
        links = {"switch_links": 18}
    elif shape == "mesh":
        links = {"pair_links": {(i, j): 4 for i in range(gpus) for j in range(i + 1, gpus)}}
    per_gpu: dict = {}
    kind, _, where = sick.partition(":")
    if kind == "x8":
        per_gpu = {int(where): {"nvmlDeviceGetCurrPcieLinkWidth": 8}}
    elif kind == "nvlink_down":
        a, b = (int(x) for x in where.split("-"))
        links["down_between"] = (a, b)
    elif kind:
        raise ValueError(f"PRETEND_SICK={sick!r}: x8:GPU or nvlink_down:GPU-GPU")
    m.nvml = FakeNvml(gpus=gpus, per_gpu=per_gpu, **H100_NVML, **topology(gpus, **links))
    m.cuda = FakeCuda(driver=12080, devices=[("NVIDIA H100 80GB HBM3", (9, 0))] * gpus)
    m.framework("tensorflow", gpus=[f"/physical_device:GPU:{i}" for i in range(gpus)])
    return m


_root = Path(tempfile.mkdtemp(prefix="pretend-gpus-"))
atexit.register(shutil.rmtree, _root, True)
_machine = staged(
    _root,
    int(os.environ.get("PRETEND_GPUS", "8")),
    os.environ.get("PRETEND_TOPOLOGY", "nvswitch"),
    os.environ.get("PRETEND_SICK", ""),
)

system.current = lambda env=None: _machine.boundary()
devices.STAND_IN_FOR_NVML = True
