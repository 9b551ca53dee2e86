"""The multi-GPU checks through the real runner (`python -m smoke_tests -k multi_gpu`): n/a on one device; on
simulated devices (XLA_FLAGS) their negative controls fail them, and on a staged machine of eight GPUs one
sick GPU fails the run, named by index, PCI bus id and serial; a measuring process that crashes costs only the
parts it had not written. That 4 simulated devices pass all four at the quick level is
tests/smoke/test_make_smoke_test.py's, where `make smoke-test` runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from smoke_tests.settings import HERE
from tests.smoke.fake_nvml import bus_id, uuid

ROOT = Path(__file__).resolve().parents[2]
TINY = """
[levels.tiny]
check_timeout_s = 300
suite_timeout_s = 900
workloads = []
workload_args = ["--quick"]
transfer_args = []
repeats = 3
matmul_n = { gpu = 128, cpu = 128 }
matmul_steps = { gpu = 2, cpu = 2 }
h2d_mib = 4
h2d_steps = 2
ladder_images = { gpu = 64, cpu = 64 }
ladder_train_images = 256
ladder_steps_per_execution = { gpu = 2, cpu = 2 }
ladder_rungs = { gpu = 1, cpu = 1 }

[levels.tiny.multi_gpu]
repeats = { gpu = 3, cpu = 5 }
confirm_rounds = { gpu = 1, cpu = 2 }
matmul_n = { gpu = 384, cpu = 384 }
matmul_steps = { gpu = 4, cpu = 4 }
copy_mib = { gpu = 4, cpu = 4 }
copy_steps = { gpu = 2, cpu = 2 }
mem_mib = { gpu = 32, cpu = 32 }
mem_steps = { gpu = 4, cpu = 4 }
p2p_mib = { gpu = 4, cpu = 4 }
p2p_steps = { gpu = 2, cpu = 2 }
all_reduce_mib = { gpu = [1, 2], cpu = [1, 2] }
all_reduce_iters = { gpu = 2, cpu = 2 }
scaling_executions = { gpu = 1, cpu = 1 }
"""
SIMULATE = "--xla_force_host_platform_device_count={n}"


def smoke(
    out: Path, select: str, env: dict[str, str], level: str = "tiny"
) -> tuple[subprocess.CompletedProcess, dict]:
    settings = out.parent / "settings.toml"
    settings.write_text((HERE / "settings.toml").read_text() + TINY)
    environ = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "PYTEST_ADDOPTS")}
    proc = subprocess.run(
        [sys.executable, "-m", "smoke_tests", "--level", "tiny", "-k", select, "--out", str(out)],
        cwd=ROOT, env={**environ, "SMOKE_SETTINGS": str(settings), **env}, capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip
    return proc, json.loads((out / "report.json").read_text())


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"] if c["category"] == "multi_gpu"}


def test_on_one_device_the_checks_are_na_and_say_so(tmp_path: Path) -> None:
    proc, report = smoke(tmp_path / "r", "multi_gpu", {})
    assert proc.returncode == 0, proc.stdout[-3000:]
    checks = by_name(report)
    assert sorted(checks) == [
        "all_reduce_busbw",
        "data_parallel_training",
        "p2p_bandwidth",
        "per_gpu_outliers",
    ]
    for check in checks.values():
        assert check["status"] == "skipped" and check["message"].startswith("n/a: one device"), check
        assert "xla_force_host_platform_device_count=4 simulates 4 devices" in check["message"]
    assert not (tmp_path / "r" / "multi_gpu").exists()  # no measuring process started


@pytest.fixture(scope="module")
def sick_of_eight(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, dict, Path]:
    """A staged machine of eight H100s on NVSwitch: GPU 3's link trained at x8, GPU 5 (a simulated stand-in)
    made 1.6 times slower at the measurement boundary (its timed windows read 1.6 times longer), and device
    6's all-reduce result with a wrong element."""
    out = tmp_path_factory.mktemp("eight") / "r"
    env = {
        "XLA_FLAGS": SIMULATE.format(n=8),
        "PYTEST_ADDOPTS": "-p tests.smoke.pretend_gpus -p tests.smoke.multi_gpu_faults",
        "PRETEND_GPUS": "8",
        "PRETEND_SICK": "x8:3",
        "MULTI_GPU_FAULT": "slow:5:1.6,wrong_all_reduce:6",
    }
    proc, report = smoke(out, "per_gpu or p2p or all_reduce", env)
    return proc, report, out


@pytest.mark.slow
def test_one_sick_gpu_of_eight_fails_the_run_named_by_index_bus_id_and_serial(sick_of_eight: tuple) -> None:
    proc, report, _ = sick_of_eight
    assert proc.returncode == 1 and report["verdict"] == "FAILED", proc.stdout[-3000:]
    checks = by_name(report)
    slow = f"GPU 5 (bus {bus_id(5)}, serial 1650000000005)"
    per_gpu = checks["per_gpu_outliers"]
    assert per_gpu["status"] == "failed" and slow in per_gpu["message"], per_gpu["message"]
    assert "behind the median of its 7 identical siblings" in per_gpu["message"]
    assert not any(f"GPU {i} (bus" in per_gpu["message"] for i in (0, 1, 2, 3, 4, 6, 7)), per_gpu["message"]
    devices = {d["index"]: d for d in report["devices"]}
    assert len(devices) == 8 and devices[5]["problems"] and devices[5]["serial"] == "1650000000005"
    assert devices[5]["pci_bus_id"] == bus_id(5) and devices[5]["uuid"] == uuid(5)
    assert not any(d["problems"] for i, d in devices.items() if i not in (3, 5))
    assert devices[3]["pcie"] == "Gen5 x8 of x16" and devices[0]["figures"]["fp32_tflops"]["value"] > 0
    assert devices[3]["problems"] == [f"GPU 3 (bus {bus_id(3)}, serial 1650000000003): PCIe link x8 of x16: "
                                      "reseat the card, use a full-width slot, no riser"]  # fmt: skip
    summary = proc.stdout[proc.stdout.index("=" * 78) :]
    assert f"!! {slow}: fp32_tflops" in summary, summary
    assert "multi-GPU checks on 8 simulated devices" in summary


@pytest.mark.slow
def test_a_staged_gpu_at_x8_is_named(sick_of_eight: tuple) -> None:
    report = sick_of_eight[1]
    p2p = by_name(report)["p2p_bandwidth"]
    assert p2p["status"] == "failed", p2p
    assert f"GPU 3 (bus {bus_id(3)}, serial 1650000000003): PCIe link x8 of x16" in p2p["message"]
    assert (
        p2p["details"]["topology"]["GPU 0 - GPU 1"]["link"] == "NV18" and len(p2p["details"]["matrix"]) == 56
    )
    assert "p2p_matrix.png" in " ".join(p2p["plots"])


@pytest.mark.slow
def test_an_all_reduce_that_returns_a_wrong_value_fails(sick_of_eight: tuple) -> None:
    report, out = sick_of_eight[1], sick_of_eight[2]
    check = by_name(report)["all_reduce_busbw"]
    assert check["status"] == "failed"
    assert "returned 1 wrong element(s) on GPU 6 (bus" in check["message"], check["message"]
    assert all(row["wrong"][6] == 1 and sum(row["wrong"]) == 1 for row in check["details"]["sizes"])
    assert any("test hook" in w for w in check["warnings"])
    page = (out / "report.html").read_text()
    table = page[page.index('<table id="devices">') :]
    assert table[: table.index("</table>")].count("<tr") == 9  # a header and one row per GPU


def _fake_parts(folder: Path) -> Path:
    """Canned results of a healthy measuring process on 4 simulated devices, and a training that fails."""
    folder.mkdir()
    same = {str(i): 1.0 for i in range(4)}
    figure = {"unit": "TFLOP/s", "values": same, "spread": dict.fromkeys(same, 0.01), "rounds": [same]}
    (folder / "per_gpu.json").write_text(json.dumps(
        {"status": "ok", "figures": {"fp32_tflops": figure}, "sizes": {}, "repeats": 3}))  # fmt: skip
    (folder / "training.json").write_text(json.dumps({
        "status": "ok", "devices": 4, "global_batch": 64, "dataset": {"name": "fashion_mnist"}, "notes": [],
        "first_steps": {"one_device": [2.98, 1.79], "all_devices": [2.98, 1.95],
                        "relative_difference": [1e-7, 0.089], "tolerance": 1e-3, "steps": 2},
        "recipe": {"metrics": {"test_accuracy": 0.41}, "threshold_source": "thresholds.toml",
                   "thresholds": {"test_accuracy": {"op": ">=", "value": 0.77, "actual": 0.41,
                                                    "passed": False}}},
        "scaling": {"images_per_s_one": 100.0, "images_per_s_all": 50.0, "speedup": 0.5, "efficiency": 0.125},
    }))  # fmt: skip
    return folder


def test_a_crash_of_the_measuring_process_costs_only_the_parts_not_written(tmp_path: Path) -> None:
    env = {"XLA_FLAGS": SIMULATE.format(n=4), "PYTEST_ADDOPTS": "-p tests.smoke.fake_measure",
           "FAKE_MEASURE_FROM": str(_fake_parts(tmp_path / "parts")),
           "FAKE_MEASURE_CRASH": "p2p"}  # fmt: skip
    proc, report = smoke(tmp_path / "r", "per_gpu or p2p or all_reduce", env)
    assert proc.returncode == 1, proc.stdout[-3000:]
    checks = by_name(report)
    assert checks["per_gpu_outliers"]["status"] == "passed", checks["per_gpu_outliers"]
    for name in ("p2p_bandwidth", "all_reduce_busbw"):
        assert checks[name]["status"] == "failed"
        assert "the measuring process was killed by signal 11 (SIGSEGV)" in checks[name]["message"]
    assert "before the p2p measurement" in checks["p2p_bandwidth"]["message"]


def test_training_that_disagrees_with_one_device_or_misses_its_pass_mark_fails(tmp_path: Path) -> None:
    env = {"XLA_FLAGS": SIMULATE.format(n=4), "PYTEST_ADDOPTS": "-p tests.smoke.fake_measure",
           "FAKE_MEASURE_FROM": str(_fake_parts(tmp_path / "parts"))}  # fmt: skip
    proc, report = smoke(tmp_path / "r", "data_parallel", env)
    check = by_name(report)["data_parallel_training"]
    assert proc.returncode == 1 and check["status"] == "failed", proc.stdout[-3000:]
    assert (
        "step 2: loss 1.79 on one device, 1.95 on 4: relative difference 8.9e-02 > 1e-03" in check["message"]
    )
    assert "test_accuracy 0.41 (needs >= 0.77" in check["message"]
    assert any("simulated devices: 4 JAX devices" in w for w in check["warnings"])
    assert "checked on JAX" in check["details"]["tensorflow"]


@pytest.mark.slow
def test_a_device_trained_on_another_devices_data_breaks_the_first_steps(tmp_path: Path) -> None:
    """The loss comparison's negative control, on 2 simulated devices: device 1 trains on device 0's shard."""
    script = (
        "import json, sys\n"
        "from types import SimpleNamespace\n"
        "sys.modules['tensorflow'] = None\n"
        "import jax\n"
        "from smoke_tests.multi_gpu import training\n"
        "from workloads.data.images import load_digits_fallback\n"
        "ctx = SimpleNamespace(devices=jax.devices('cpu'), seed=0)\n"
        "result = training.first_steps(ctx, load_digits_fallback(), 64, duplicate_shard=True)\n"
        "print(json.dumps(result))\n"
    )
    environ = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env = {**environ, "XLA_FLAGS": SIMULATE.format(n=2), "JAX_PLATFORMS": "cpu", "KERAS_BACKEND": "jax"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # At step 1 the untrained model scores every image alike; the wrong gradient shows at step 2.
    assert result["steps"] == 2 and result["relative_difference"][1] > 10 * result["tolerance"], result
