"""pytest plugin for the smoke checks: pretend this CPU machine has an H100, so the GPU code paths run.

NVML is replaced by the fake (its telemetry reports a thermal slowdown when PRETEND_THROTTLE=1) and the
framework is told it has a GPU; TensorFlow's soft device placement then runs the "/GPU:0" work on the CPU.
Loaded into the check process with PYTEST_ADDOPTS="-p tests.smoke.pretend_gpu".
"""

from __future__ import annotations

import os

import pynvml

from smoke_tests import backend, nvml
from tests.smoke.fake_nvml import FakeNvml


def _fake() -> FakeNvml:
    throttle = os.environ.get("PRETEND_THROTTLE") == "1"
    return FakeNvml(events=[pynvml.nvmlClocksEventReasonHwThermalSlowdown if throttle else 0])


nvml._import_nvml = _fake
backend.gpu_devices = lambda: ["/physical_device:GPU:0 (pretend)"]
