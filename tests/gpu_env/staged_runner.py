"""`python -m tests.gpu_env.staged_runner MACHINE SMOKE_TEST_ARGS...`: the smoke test's runner with its GPU
probe pointed at a staged machine (tests/gpu_doctor/staging.py), as the runner sees a GPU before the checks
start: what it decides there (the backend, the warm-up) is then tested on this CPU machine. The check process
itself runs on the real machine."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from gpu_doctor import system
from smoke_tests.runner import main
from tests.gpu_doctor.staging import Machine
from tests.gpu_doctor.test_fault_injection import rtx_5090


def _jax_plugin(m: Machine) -> Machine:
    m.metadata.versions.update({"jax": "0.10.2", "jax-cuda12-plugin": "0.10.2"})
    return m


MACHINES = {
    "h100": lambda root: _jax_plugin(Machine.healthy_h100(root)),
    "rtx5090": lambda root: _jax_plugin(_staged(Machine.healthy_h100(root), rtx_5090)),
}


def _staged(m: Machine, stage) -> Machine:
    stage(m)
    return m


if __name__ == "__main__":
    root = Path(tempfile.mkdtemp(prefix="staged-runner-"))
    try:
        machine = MACHINES[sys.argv[1]](root)
        machine.env = os.environ  # KERAS_BACKEND as the runner sets it
        staged = lambda env=None: machine.boundary()  # noqa: E731
        system.current = importlib.import_module("gpu_doctor.diagnose").current = staged
        code = main(sys.argv[2:])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    sys.exit(code)
