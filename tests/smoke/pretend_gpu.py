"""pytest plugin for the smoke checks: pretend this CPU machine has an H100, so the GPU code paths run.

The GPU doctor probes a staged healthy H100 workstation (tests/gpu_doctor/staging.py: a fake PCI tree, /proc,
/dev, NVML, libcuda and CUDA wheels), the telemetry sampler gets a fake NVML that reports a thermal slowdown
when PRETEND_THROTTLE=1, and the framework is told it has a GPU; TensorFlow's soft device placement then runs
the "/GPU:0" work on the CPU. Loaded into the check process with PYTEST_ADDOPTS="-p tests.smoke.pretend_gpu".
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pynvml

from gpu_doctor import system, telemetry
from smoke_tests import framework_ops
from tests.gpu_doctor.staging import H100_NVML, Machine
from tests.smoke.fake_nvml import FakeNvml
from tests.smoke.probe_here import pytest_configure  # noqa: F401 (the checks probe the staged machine)


def _telemetry_nvml() -> FakeNvml:
    throttle = os.environ.get("PRETEND_THROTTLE") == "1"
    return FakeNvml(**H100_NVML, events=[pynvml.nvmlClocksEventReasonHwThermalSlowdown if throttle else 0])


_root = Path(tempfile.mkdtemp(prefix="pretend-h100-"))
atexit.register(shutil.rmtree, _root, True)
_machine = Machine.healthy_h100(_root)

system.current = lambda env=None: _machine.boundary()
telemetry.import_pynvml = _telemetry_nvml
framework_ops.gpu_devices = lambda: ["/physical_device:GPU:0 (pretend)"]
