"""Fixtures of the GPU-environment tests, each made once per test session (CI run): a fresh copy of the
checkout where `make smoke-test` ran with an H100 faked on the PCI bus (it installs the GPU set: the real CUDA
wheels), and Debian's real NVIDIA user-space libraries (scripts/nvidia-userspace.sh)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, require, require_tool
from tests.gpu_env import namespace

# What the checkout's own environment must not pass on to a fresh checkout's make.
NOT_INHERITED = (
    "PYTEST_ADDOPTS", "PYTHONPATH", "VIRTUAL_ENV", "KERAS_BACKEND", "GPU_DOCTOR_ROOT", "LD_LIBRARY_PATH",
    "EXTRAS", "SETUP_EXTRAS", "MAKEFLAGS", "MFLAGS", "MAKELEVEL",
)  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in NOT_INHERITED}, **extra}


def fresh_checkout(destination: Path) -> Path:
    """The files a clone of this checkout has (tracked and new, not ignored): no .venv, no .cache, no
    reports."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


@dataclass
class GpuCheckout:
    """A fresh checkout after `make smoke-test` on a machine with an H100 on the PCI bus and no driver."""

    path: Path
    pci: Path
    make: subprocess.CompletedProcess[str]
    report_dir: Path
    seconds: float

    @property
    def python(self) -> Path:
        return self.path / ".venv-run" / "bin" / "python"

    def probe(self, *args: str, env: dict[str, str] | None = None, private_dev: bool = False) -> dict:
        """tests/gpu_env/probes.py in this checkout's environment (its .venv-run)."""
        cmd = [str(self.python), "-m", "tests.gpu_env.probes", *args]
        proc = namespace.run(
            cmd, private_dev=private_dev, cwd=self.path, env=clean_env(**(env or {})), timeout=600
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        return {**json.loads(proc.stdout.strip().splitlines()[-1]), "_stderr": proc.stderr}


@pytest.fixture(scope="session")
def gpu_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GpuCheckout]:
    """`make smoke-test` (its system checks: `SMOKE_ARGS=-k system`) in a fresh checkout, in a private mount
    namespace where an H100 sits on the PCI bus without a driver: the Makefile's hardware rule sees it and
    installs the GPU set (TensorFlow's CUDA wheels and JAX's CUDA plugin, about 2.7 GB of wheels from uv's
    shared cache) into .venv-run. Every test of the real CUDA wheels uses this one environment."""
    namespace.require_namespaces()
    require_tool("make")
    require(shutil.which("uv") is not None or (REPO / ".cache/uv/bin/uv").exists(), "uv (make setup)")
    root = tmp_path_factory.mktemp("gpu-checkout")
    checkout = fresh_checkout(root / "keras-workstation")
    pci = namespace.staged_pci(root / "pci", namespace.H100, namespace.H100_AUDIO)
    out = checkout / "reports" / "fake-h100"
    started = time.monotonic()
    make = namespace.run(
        ["make", "smoke-test", f"SMOKE_ARGS=-k system --out {out}"],
        pci=pci, cwd=checkout, env=clean_env(), timeout=2400,
    )  # fmt: skip
    yield GpuCheckout(checkout, pci, make, out, round(time.monotonic() - started, 1))
    shutil.rmtree(checkout / ".venv-run", ignore_errors=True)  # 6 GB if uv could not hard-link from its cache


@pytest.fixture(scope="session")
def nvidia_userspace() -> Path:
    """Debian 12's non-free libcuda.so.1, libnvidia-ml.so.1 and the PTX JIT (535), unpacked into .cache."""
    require_tool("apt-get")
    require_tool("dpkg-deb")
    proc = subprocess.run(
        [REPO / "scripts" / "nvidia-userspace.sh"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Path(proc.stdout.strip().splitlines()[-1])
