"""Which physical GPU is which (gpu_doctor.devices): PCI bus ids in every spelling, CUDA_VISIBLE_DEVICES in
all its forms (CUDA Programming Guide, "CUDA Environment Variables"), and CUDA's devices matched to NVML's."""

from __future__ import annotations

import pytest

from gpu_doctor import devices
from tests.smoke.fake_nvml import bus_id, uuid


def _gpus(*names: str) -> list[dict]:
    ccs = {"RTX 4090": "8.9", "H100": "9.0"}
    return [
        {"index": i, "name": n, "compute_capability": ccs[n], "pci_bus_id": bus_id(i), "uuid": uuid(i)}
        for i, n in enumerate(names)
    ]


@pytest.mark.parametrize(
    ("text", "bus"),
    [
        ("00000000:01:00.0", "0000:01:00.0"),  # NVML
        ("0000:C1:00.0", "0000:c1:00.0"),  # cuDeviceGetPCIBusId
        (b"00000000:41:00.0\0\0", "0000:41:00.0"),  # a C buffer
        ("0000:41:00", "0000:41:00.0"),  # the kernel log's Xid lines
        ("41:00.0", "0000:41:00.0"),
        ("not a bus id", None),
        (None, None),
    ],
)
def test_bus_ids_in_every_spelling(text: object, bus: str | None) -> None:
    assert devices.normalize_bus_id(text) == bus


def test_unset_shows_every_gpu_and_says_when_cuda_alone_knows_the_order() -> None:
    same = devices.visible(_gpus("H100", "H100"), {})
    assert [g["index"] for g in same.gpus] == [0, 1] and same.order_known
    unlike = devices.visible(_gpus("RTX 4090", "H100"), {})
    assert not unlike.order_known  # FASTEST_FIRST on unlike GPUs: CUDA's heuristic decides
    assert devices.visible(_gpus("RTX 4090", "H100"), {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}).order_known


@pytest.mark.parametrize(
    ("value", "shown", "stopped_at"),
    [
        ("", [], None),  # empty: no GPU at all
        ("1", [1], None),
        ("2,0", [2, 0], None),  # the order of the list is CUDA's order
        ("0,2,-1,1", [0, 2], "-1"),  # the guide's own example: the list stops at the invalid entry
        ("0,0", [0], "0"),  # a GPU named twice
        ("7", [], "7"),
        (uuid(1), [1], None),  # a full UUID
        (uuid(2)[:12], [2], None),  # a prefix that names one GPU alone ("GPU-8932f939")
        ("GPU-8932f93", [], "GPU-8932f93"),  # a prefix every GPU shares names none
        (f"MIG-{uuid(1)}/1/0", [1], None),  # the R450 MIG form names its parent GPU
        ("MIG-5c89852c-d268-c3f3-1b07-005d5ae1dc3f", [2], None),  # a MIG device NVML listed under GPU 2
        (f"{uuid(0)},1", [0, 1], None),  # forms mix
    ],
)
def test_cuda_visible_devices_in_all_its_forms(value: str, shown: list[int], stopped_at: str | None) -> None:
    gpus = _gpus("H100", "H100", "H100")
    gpus[2]["mig_uuids"] = ["MIG-5c89852c-d268-c3f3-1b07-005d5ae1dc3f"]
    seen = devices.visible(gpus, {"CUDA_VISIBLE_DEVICES": value})
    assert [g["index"] for g in seen.gpus] == shown and seen.stopped_at == stopped_at, seen.explain()
    assert seen.hides_all == (not shown)


def test_cuda_devices_are_matched_to_nvml_by_bus_id_not_by_number() -> None:
    """CUDA put the H100 (NVML's GPU 1) first: its ordinal 0 is NVML's index 1."""
    nvml = _gpus("RTX 4090", "H100")
    cuda = [{"ordinal": 0, "pci_bus_id": bus_id(1), "uuid": None}, {"ordinal": 1, "pci_bus_id": bus_id(0)}]
    devices.match_cuda_devices(cuda, nvml)
    assert [d["nvml_index"] for d in cuda] == [1, 0]
    gpu = devices.physical(cuda, nvml, 0)
    assert gpu == {"cuda_ordinal": 0, "index": 1, "pci_bus_id": bus_id(1), "uuid": uuid(1), "name": "H100"}
    assert devices.describe(gpu) == f"GPU 1 ({bus_id(1)}, {uuid(1)})"
    assert devices.physical(cuda, nvml, 5) == {}
