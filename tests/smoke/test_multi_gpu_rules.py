"""The multi-GPU checks' rules without a framework: the sibling rule, the expected interconnect figures and
their public reference points, the device list, and the measuring process's command-line faults."""

from __future__ import annotations

import pytest

from gpu_doctor import nvml
from smoke_tests.multi_gpu import devices, interconnect, siblings
from smoke_tests.multi_gpu.measure import Faults
from smoke_tests.speed import expected_table
from tests.smoke.fake_nvml import FakeNvml, bus_id, uuid
from tests.smoke.fake_nvml import topology as staged

EIGHT = {str(i): "NVIDIA H100 80GB HBM3" for i in range(8)}


# --- the sibling rule ---------------------------------------------------------------------------------------
def test_a_gpu_more_than_ten_percent_behind_its_siblings_is_named_above_its_floor() -> None:
    # DCGM#122: a slow GPU that passes the absolute floor (here 40.2 TFLOP/s) is still 15% behind its twins.
    values = {**dict.fromkeys(EIGHT, 53.0), "5": 45.0}
    found = siblings.behind(values, EIGHT)
    assert list(found) == ["5"] and found["5"]["behind"] == pytest.approx(0.1509, abs=1e-4)
    assert found["5"]["siblings"] == 7 and found["5"]["siblings_median"] == 53.0
    assert siblings.behind({**values, "5": 48.0}, EIGHT) == {}  # 9.4% behind: within the rule


def test_only_identical_siblings_are_compared() -> None:
    groups = {"0": "NVIDIA H100 80GB HBM3", "1": "NVIDIA H100 80GB HBM3", "2": "NVIDIA L4"}
    assert siblings.behind({"0": 50.0, "1": 51.0, "2": 20.0}, groups) == {}  # the L4 has no twin


def test_a_flagged_device_must_be_behind_in_every_round() -> None:
    noisy = [{**dict.fromkeys(EIGHT, 10.0), "2": 8.0}, dict.fromkeys(EIGHT, 10.0)]
    assert siblings.confirmed(noisy, EIGHT) == {}
    slow = [{**dict.fromkeys(EIGHT, 10.0), "2": 6.0}, {**dict.fromkeys(EIGHT, 10.0), "2": 6.5}]
    found = siblings.confirmed(slow, EIGHT)
    assert list(found) == ["2"] and found["2"]["rounds"] == 2 and found["2"]["value"] == 6.5


def test_on_simulated_devices_only_the_steady_figures_are_compared() -> None:
    assert siblings.compared("h2d_gbs", simulated=False) and siblings.compared("p2p_gbs", simulated=False)
    assert not siblings.compared("h2d_gbs", simulated=True) and not siblings.compared(
        "p2p_gbs", simulated=True
    )
    assert siblings.compared("fp32_tflops", simulated=True) and not siblings.compared(
        "mem_gbs", simulated=True
    )
    assert siblings.compared("mem_gbs", simulated=False)


# --- expected interconnect figures --------------------------------------------------------------------------
def test_link_models_are_nccls() -> None:
    assert interconnect.nvlink_gbs("9.0") == 20.6 and interconnect.nvlink_gbs("8.0") == 20.0
    assert interconnect.nvlink_gbs("8.6") == 12.0 and interconnect.nvlink_gbs("10.3") == 40.1
    assert interconnect.nvlink_gbs("5.2") is None and interconnect.nvlink_gbs("n/a") is None
    # NCCL: PCIe Gen3 x16 = 12 GB/s (PCI_BW), Gen4 x16 = 24, Gen5 x16 = 48.
    assert [interconnect.pcie_gbs(g, 16) for g in (3, 4, 5)] == [12.0, 24.0, 48.0]
    assert interconnect.pcie_gbs(4, 8) == 12.0 and interconnect.pcie_gbs("n/a", 16) is None


def test_busbw_is_nccl_tests_convention() -> None:
    assert interconnect.busbw(100.0, 8) == pytest.approx(175.0) and interconnect.busbw(100.0, 2) == 100.0


def _machine(name: str, cc: tuple[int, int], gpus: int, **links: object) -> dict:
    fake = FakeNvml(gpus=gpus, nvmlDeviceGetName=name, nvmlDeviceGetCudaComputeCapability=cc,
                    **staged(gpus, **links))  # fmt: skip
    return nvml.probe(fake)


# Each public reference point with the topology that SKU has: the derived floor must never fail a machine
# that passes Azure's own check, and the derivation must land near the measured floors (0.7-1.3 of them).
REFERENCES = {
    "h100_sxm": ("NVIDIA H100 80GB HBM3", (9, 0), 8, {"switch_links": 18}),
    "h200": ("NVIDIA H200", (9, 0), 8, {"switch_links": 18}),
    "a100": ("NVIDIA A100-SXM4-80GB", (8, 0), 8, {"switch_links": 12}),
    "h100_nvl": ("NVIDIA H100 NVL", (9, 0), 2, {"pair_links": {(0, 1): 12}}),
}


@pytest.mark.parametrize("model", REFERENCES)
def test_derived_floors_against_the_public_reference_points(model: str) -> None:
    name, cc, gpus, links = REFERENCES[model]
    picture = _machine(name, cc, gpus, **links)
    by_index = {g["index"]: g for g in picture["gpus"]}
    reference = interconnect.reference(by_index)
    assert reference is not None and reference["model"] == model, reference
    expected = interconnect.expected_busbw(picture["topology"], by_index)
    floor = expected_table()["derate"] * expected["gbs"]
    assert floor <= reference["busbw_gbs"], (expected, reference)
    assert 0.7 <= expected["gbs"] / reference["busbw_gbs"] <= 1.3, (expected, reference)


def test_expected_pair_and_all_reduce_per_topology() -> None:
    hgx = _machine("NVIDIA H100 80GB HBM3", (9, 0), 8, switch_links=18, down={(3, 0)})
    gpus = {g["index"]: g for g in hgx["gpus"]}
    pairs = {tuple(p["gpus"]): p for p in hgx["topology"]["pairs"]}
    assert interconnect.expected_pair(pairs[(0, 1)], gpus)["gbs"] == pytest.approx(18 * 20.6)
    assert interconnect.expected_pair(pairs[(0, 3)], gpus)["gbs"] == pytest.approx(
        17 * 20.6
    )  # the slower end
    assert interconnect.expected_busbw(hgx["topology"], gpus)["gbs"] == pytest.approx(17 * 20.6)
    pcie = nvml.probe(FakeNvml(gpus=4, per_gpu={2: {"nvmlDeviceGetMaxPcieLinkGeneration": 4}}))
    gpus = {g["index"]: g for g in pcie["gpus"]}
    assert interconnect.expected_busbw(pcie["topology"], gpus)["gbs"] == 24.0  # Gen4 x16, the slowest link
    pair = next(p for p in pcie["topology"]["pairs"] if p["gpus"] == [0, 1])
    assert interconnect.expected_pair(pair, gpus)["gbs"] == 48.0
    no_p2p = nvml.probe(FakeNvml(gpus=2, nvmlDeviceGetP2PStatus=5))
    gpus = {g["index"]: g for g in no_p2p["gpus"]}
    assert interconnect.expected_pair(no_p2p["topology"]["pairs"][0], gpus)["gbs"] is None
    assert interconnect.expected_busbw(no_p2p["topology"], gpus)["gbs"] is None
    sockets = nvml.probe(FakeNvml(gpus=2, nvmlDeviceGetTopologyCommonAncestor=50))
    gpus = {g["index"]: g for g in sockets["gpus"]}
    assert "SYS" in interconnect.expected_busbw(sockets["topology"], gpus)["basis"]


# --- the device list ----------------------------------------------------------------------------------------
def _gpus(n: int) -> dict:
    return nvml.probe(FakeNvml(gpus=n)) if n else {"available": False, "gpus": []}


def test_the_plan_from_nvml_and_xla_flags() -> None:
    flag = {"XLA_FLAGS": "--xla_cpu_foo --xla_force_host_platform_device_count=4"}
    assert devices.plan(_gpus(0), flag) == devices.Plan("simulated", 4)
    assert devices.plan(_gpus(8), {}) == devices.Plan("gpu", 8)
    one_device = devices.plan(_gpus(0), {})
    assert one_device.mode is None and one_device.reason.startswith("n/a: one device")
    assert "device_count=4 simulates" in one_device.reason
    one_gpu = devices.plan(_gpus(1), flag)  # a real GPU: the CPU is not split into pretend GPUs
    assert one_gpu.mode is None and one_gpu.reason.startswith("n/a: one GPU")


def test_jax_devices_are_joined_to_nvml_by_pci_bus_id() -> None:
    system = _gpus(4)
    # CUDA ordinals in another order than NVML's indices (CUDA_DEVICE_ORDER=FASTEST_FIRST); CUDA writes the
    # address in upper case, NVML's picture in sysfs form.
    report = [{"id": k, "platform": "gpu", "kind": "NVIDIA H100 80GB HBM3", "pci_bus_id": bus_id(i).upper()}
              for k, i in enumerate((2, 0, 3))]  # fmt: skip
    found, problems = devices.join(report, system)
    assert [d.nvml["index"] for d in found] == [2, 0, 3] and not any(d.simulated for d in found)
    assert found[0].label() == f"GPU 2 (bus {bus_id(2)}, serial 1650000000002)"
    assert found[0].as_dict()["uuid"] == uuid(2)
    assert problems == [f"GPU 1 (NVIDIA H100 80GB HBM3, bus {bus_id(1)}) is not visible to JAX "
                        "(CUDA_VISIBLE_DEVICES?)"]  # fmt: skip
    assert devices.normalize_bus_id("0000:18:00.0") == devices.normalize_bus_id("00000000:18:00.0")


def test_simulated_devices_have_no_nvml_identity() -> None:
    found, problems = devices.join([{"id": i, "platform": "cpu", "kind": "cpu"} for i in range(4)], _gpus(0))
    assert problems == [] and all(d.simulated and not d.nvml for d in found)
    assert found[3].label() == "simulated device 3" and found[3].group == found[0].group


def test_faults_the_measuring_process_accepts() -> None:
    faults = Faults.parse(["slow:2:1.5", "wrong_all_reduce:3", "duplicate_shard"])
    assert faults.slowness(0, 2) == 1.5 and faults.slowness(1) == 1.0 and faults.wrong_all_reduce_on == 3
    assert faults.duplicate_shard and faults.active() and not Faults.parse([]).active()
    with pytest.raises(ValueError, match="slow:DEVICE:FACTOR"):
        Faults.parse(["slow:2"])
