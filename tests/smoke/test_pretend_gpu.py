"""The GPU code paths of the checks, run on this CPU machine against a pretend H100 (fake NVML, TensorFlow
soft placement): every GPU check runs instead of being n/a, the GPU/CPU comparisons hold, and a telemetry
window with a thermal slowdown makes each speed measurement invalid rather than passed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from smoke_tests.settings import settings

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
TINY_LEVEL = """
[levels.tiny]
check_timeout_s = 300
suite_timeout_s = 900
workloads = []
workload_args = []
transfer_args = []
repeats = 3
matmul_n = { gpu = 128, cpu = 128 }
matmul_steps = { gpu = 2, cpu = 2 }
h2d_mib = 4
h2d_steps = 2
ladder_images = { gpu = 64, cpu = 64 }
ladder_train_images = 256
ladder_steps_per_execution = { gpu = 2, cpu = 2 }
ladder_rungs = { gpu = 6, cpu = 1 }
"""


def test_gpu_paths_with_a_throttling_pretend_h100(tmp_path: Path) -> None:
    custom = tmp_path / "settings.toml"
    custom.write_text((ROOT / "smoke_tests" / "settings.toml").read_text() + TINY_LEVEL)
    out = tmp_path / "r"
    env = {**os.environ, "SMOKE_SETTINGS": str(custom), "PRETEND_THROTTLE": "1",
           "PYTEST_ADDOPTS": "-p tests.smoke.pretend_gpu"}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "smoke_tests", "--level", "tiny", "-k", "not workload", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    status = {c["name"]: c for c in report["checks"]}
    assert report["gpu"]["available"] and "NVIDIA H100 80GB HBM3" in proc.stdout
    lower = ("kernel_module", "device_nodes", "nvml", "cuda_driver", "cuda_libraries", "memory", "framework")
    layers = [f"layer[{n}]" for n in (*lower, "health", "containers")]
    framework = ("gpu_visible", "matmul_gpu_matches_cpu", "convolution_forward_backward", "xla_compiles")
    for name in ("gpu_found", *layers, *framework, "mixed_precision", "seeded_training_is_identical"):
        assert status[name]["status"] == "passed", (name, status[name]["message"])
    driver = status["layer[cuda_driver]"]
    assert "built with CUDA 12.5.1: the driver runs it" in driver["details"]["summary"]
    assert any(
        "JIT-compiles its compute_90 PTX" in w for w in driver["warnings"]
    )  # the H100 needs TF 2.21's compute_90 PTX
    gpu0 = {"cuda_ordinal": 0, "index": 0, "pci_bus_id": "0000:01:00.0"}
    assert gpu0.items() <= status["matmul_tflops[fp32]"]["details"]["ran_on"].items()  # which GPU it ran on
    assert report["diagnosis"]["staged_root"] and report["diagnosis"]["first_broken"] is None
    for name in ("matmul_tflops[fp32]", "matmul_tflops[tf32]", "matmul_tflops[bf16]",
                 "host_to_device_bandwidth", "training_ladder"):  # fmt: skip
        assert status[name]["status"] == "invalid", (name, status[name]["message"])
        assert "hw_thermal_slowdown" in status[name]["message"]
        assert status[name]["telemetry"] and status[name]["figures"]
    ladder = status["training_ladder"]["details"]["ladder"]
    assert len(ladder) == 6 and all(r["gpu_cpu_ratio"] > 0 and not r["valid"] for r in ladder)
    assert status["matmul_tflops[fp32]"]["figures"]["fp32_tflops"]["expected"] == pytest.approx(53.6)
    assert "telemetry.png" in report["charts"]
    assert settings()["throttle"]["invalidating"]  # the rule that made them invalid comes from the data file
