"""CUDA ordinals are not NVML indices: staged two-GPU machines, through the real CLI. CUDA orders GPUs fastest
first and renumbers those CUDA_VISIBLE_DEVICES lets through; the doctor matches them to NVML by PCI bus id,
runs each GPU's PTX test kernel on its own ordinal, applies the build rules to the GPUs the framework will
use, and says which physical GPU the framework's GPU 0 is. Before, two healthy H100s with
CUDA_VISIBLE_DEVICES=0 gave "BROKEN at the CUDA driver layer: GPU 1 ... CUresult 101" and "upgrade the
driver"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpu_doctor.cli import main
from tests.gpu_doctor.staging import H100_PCI_ID, Machine
from tests.smoke.fake_nvml import bus_id, uuid

H100 = ("NVIDIA H100 80GB HBM3", H100_PCI_ID, (9, 0))
RTX_4090 = ("NVIDIA GeForce RTX 4090", "2684", (8, 9))
RTX_5090 = ("NVIDIA GeForce RTX 5090", "2b85", (12, 0))


def _diagnose(m: Machine, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = main(["--json", *argv], boundary=m.boundary())
    return code, json.loads(capsys.readouterr().out)


def _layer(result: dict, name: str) -> dict:
    return next(layer for layer in result["layers"] if layer["name"] == name)


@pytest.mark.parametrize(
    ("visible", "physical"),
    [("0", 0), ("1", 1), (uuid(1), 1), (uuid(1)[:13], 1), ("1,0", 1)],
    ids=["index-0", "index-1", "uuid", "uuid-prefix", "reordered"],
)
def test_two_h100s_with_cuda_visible_devices_are_healthy(
    tmp_path: Path, capsys, visible: str, physical: int
) -> None:
    m = Machine.two_gpus(tmp_path, [H100, H100])
    m.env["CUDA_VISIBLE_DEVICES"] = visible
    code, result = _diagnose(m, capsys)
    assert code == 0 and result["healthy"], [(x["name"], x["cause"]) for x in result["layers"] if x["cause"]]
    cuda = _layer(result, "cuda_driver")["facts"]["devices"]
    assert (
        cuda[0]["ordinal"] == 0
        and cuda[0]["nvml_index"] == physical
        and cuda[0]["pci_bus_id"] == bus_id(physical)
    )
    assert [ordinal for ordinal, _ in m.cuda.jit][:1] == [0]  # the PTX test kernel ran on CUDA's own ordinal
    ran_on = _layer(result, "compute")["facts"]["ran_on"]
    assert (ran_on["index"], ran_on["pci_bus_id"], ran_on["uuid"]) == (
        physical,
        bus_id(physical),
        uuid(physical),
    )
    said = "GPU 0 (" if physical == 0 else "CUDA GPU 0 = GPU 1 ("
    assert said in _layer(result, "compute")["summary"]


def test_cuda_puts_the_fastest_gpu_first_and_the_report_says_so(tmp_path: Path, capsys) -> None:
    """An RTX 4090 in the first slot, an H100 in the second: NVML's GPU 0 is the 4090, CUDA's is the H100."""
    m = Machine.two_gpus(tmp_path, [RTX_4090, H100])
    code, result = _diagnose(m, capsys)
    assert code == 0, [(x["name"], x["cause"]) for x in result["layers"] if x["cause"]]
    assert [d["nvml_index"] for d in _layer(result, "cuda_driver")["facts"]["devices"]] == [1, 0]
    assert "CUDA GPU 0 = GPU 1 (0000:41:00.0" in _layer(result, "compute")["summary"]
    m.env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    code, result = _diagnose(m, capsys)
    assert [d["nvml_index"] for d in _layer(result, "cuda_driver")["facts"]["devices"]] == [0, 1]
    assert "on GPU 0 (0000:01:00.0" in _layer(result, "compute")["summary"]


def test_the_build_rules_apply_to_the_gpus_the_framework_will_use(tmp_path: Path, capsys) -> None:
    """TensorFlow 2.21 cannot use an RTX 5090: with the 4090 beside it pinned, the machine is fine for it."""
    m = Machine.two_gpus(tmp_path, [RTX_5090, RTX_4090])
    code, result = _diagnose(m, capsys, "--no-compute")
    assert code == 1 and result["first_broken"] == "framework"
    assert "GPU 0 (0000:01:00.0" in _layer(result, "framework")["cause"]
    m.env["CUDA_VISIBLE_DEVICES"] = "1"
    m.framework("tensorflow", gpus=["/physical_device:GPU:0"])
    code, result = _diagnose(m, capsys, "--no-compute")
    assert code == 0 and result["healthy"], [(x["name"], x["cause"]) for x in result["layers"] if x["cause"]]
