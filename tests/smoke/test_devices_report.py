"""report.json's `devices` list (one entry per device, with its PCI bus id, UUID and serial), the per-GPU
table in report.html and the summary line that names a sick GPU."""

from __future__ import annotations

from pathlib import Path

from gpu_doctor import nvml
from smoke_tests import report
from tests.smoke.fake_nvml import FakeNvml, bus_id, uuid


def _checks() -> list[dict]:
    figure = {"value": 40.0, "unit": "TFLOP/s", "floor": 40.2, "behind_siblings": 0.25}
    healthy = {**figure, "value": 53.0, "behind_siblings": None}
    per_device = [
        {"index": i, "nvml_index": i, "simulated": False,
         "figures": {"fp32_tflops": figure if i == 2 else healthy}, "health": [],
         "problems": ["fp32_tflops 40 TFLOP/s below its floor 40.2"] if i == 2 else []}
        for i in range(4)
    ]  # fmt: skip
    faults = [{"gpus": [1], "problem": "GPU 1 (...): PCIe link x8 of x16"}]
    return [
        {"id": "a", "name": "per_gpu_outliers", "category": "multi_gpu", "status": "failed", "duration_s": 1,
         "details": {"per_device": per_device}},
        {"id": "b", "name": "p2p_bandwidth", "category": "multi_gpu", "status": "failed", "duration_s": 1,
         "details": {"link_faults": faults}},
    ]  # fmt: skip


def test_every_gpu_is_listed_with_its_identity_figures_and_problems(tmp_path: Path) -> None:
    system = nvml.probe(FakeNvml(gpus=4, per_gpu={1: {"nvmlDeviceGetCurrPcieLinkWidth": 8}}))
    checks = _checks()
    devices = report.devices(system, checks)
    assert [d["pci_bus_id"] for d in devices] == [bus_id(i) for i in range(4)]
    assert [d["serial"] for d in devices] == [f"165{i:010d}" for i in range(4)]
    assert devices[2]["uuid"] == uuid(2) and devices[2]["figures"]["fp32_tflops"]["value"] == 40.0
    assert (
        devices[1]["problems"] == ["GPU 1 (...): PCIe link x8 of x16"]
        and devices[1]["pcie"] == "Gen5 x8 of x16"
    )
    assert devices[0]["problems"] == [] and devices[3]["problems"] == []
    data = {"created": "now", "verdict": "FAILED", "level": "quick", "backend": "jax", "duration_s": 1,
            "gpu": system, "checks": checks, "counts": report.counts(checks), "fingerprint": {},
            "devices": devices, "require_gpu": False}  # fmt: skip
    page = report.render_html(data, tmp_path)
    table = page[page.index('<table id="devices">') :]
    table = table[: table.index("</table>")]
    assert table.count("<tr") == 5 and bus_id(2) in table and "below its floor" in table
    summary = report.summary_text(data, tmp_path)
    assert (
        f"!! GPU 2 (bus {bus_id(2)}, serial 1650000000002): fp32_tflops 40 TFLOP/s below its floor" in summary
    )


def test_one_gpu_is_listed_and_no_per_gpu_table_is_drawn(tmp_path: Path) -> None:
    system = nvml.probe(FakeNvml())
    devices = report.devices(system, [])
    assert len(devices) == 1 and devices[0]["pci_bus_id"] == bus_id(0) and devices[0]["figures"] == {}
    assert report.devices({"available": False, "gpus": []}, []) == []
