"""gpu_doctor/topology.py against staged NVML topologies (the fake raises the library's real error classes),
and the interconnect's faults they reveal (smoke_tests/multi_gpu/interconnect.py): a staged topology with one
NVLink down or one GPU at x8 names that pair or that GPU by index, PCI bus id and serial."""

from __future__ import annotations

import pynvml
import pytest

from gpu_doctor import nvml, topology
from gpu_doctor.devices import normalize_bus_id
from smoke_tests.multi_gpu import interconnect
from tests.smoke.fake_nvml import SWITCH_BUS, FakeNvml, bus_id, nvml_error
from tests.smoke.fake_nvml import topology as staged

MESH = {(i, j): 4 for i in range(4) for j in range(i + 1, 4)}


def test_an_hgx_board_every_gpu_with_18_nvlinks_to_the_switches() -> None:
    info = nvml.probe(FakeNvml(gpus=8, **staged(8, switch_links=18)))
    gpus, pairs = info["topology"]["gpus"], info["topology"]["pairs"]
    assert len(gpus) == 8 and len(pairs) == 28
    first = gpus[0]
    assert len(first["links"]) == 18  # NVML's InvalidArgument past link 17 ends the list
    assert first["links"][0] == {"link": 0, "up": True, "version": "4.0", "remote_type": "switch",
                                 "remote_bus_id": normalize_bus_id(SWITCH_BUS)}  # fmt: skip
    assert first["nvlink"] == {"up": 18, "down": [], "version": "4.0", "to_gpus": {}, "to_switch": 18}
    assert pairs[0] == {"gpus": [0, 1], "p2p_read": "OK", "path": "NODE", "nvlinks": 18, "via": "nvswitch"}
    assert topology.label(pairs[0]) == "NV18"
    assert interconnect.link_faults(info) == [] and interconnect.link_warnings(info) == []


def test_a_card_without_nvlink_and_its_pcie_path() -> None:
    info = nvml.probe(FakeNvml(gpus=2))  # NVLink state: NotSupported
    assert [g["links"] for g in info["topology"]["gpus"]] == [[], []]
    pair = info["topology"]["pairs"][0]
    assert pair["nvlinks"] == 0 and pair["via"] is None and topology.label(pair) == "PIX"


def test_nvlink_version_is_the_enum_nvml_returns() -> None:
    # open-mpi/hwloc#658: an A100 answers 5 (NVLink 3.1), not 3.
    info = nvml.probe(FakeNvml(gpus=2, **staged(2, pair_links={(0, 1): 12}, version=5)))
    assert info["topology"]["gpus"][0]["nvlink"]["version"] == "3.1"
    assert topology.label(info["topology"]["pairs"][0]) == "NV12"


def test_topology_queries_that_fail_are_facts_not_a_lost_picture() -> None:
    fake = FakeNvml(gpus=2, nvmlDeviceGetP2PStatus=nvml_error(pynvml.NVML_ERROR_UNKNOWN))
    info = nvml.probe(fake)
    assert info["available"] and info["topology"]["pairs"][0]["p2p_read"].startswith("error:")
    fake = FakeNvml(gpus=2, nvmlDeviceGetTopologyCommonAncestor=nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED))
    assert nvml.probe(fake)["topology"]["pairs"][0]["path"] == "n/a"


def test_one_nvlink_down_on_an_hgx_board_names_the_gpu() -> None:
    info = nvml.probe(FakeNvml(gpus=8, **staged(8, switch_links=18, down={(5, 11)})))
    faults = interconnect.link_faults(info)
    assert faults == [((5,), f"GPU 5 (bus {bus_id(5)}, serial 1650000000005): 17 NVLinks up, its identical "
                      "siblings 18 (links down: 11)")]  # fmt: skip


def test_one_nvlink_down_between_two_gpus_names_the_pair() -> None:
    info = nvml.probe(FakeNvml(gpus=4, **staged(4, pair_links=MESH, down_between=(1, 2))))
    named = [gpus for gpus, _ in interconnect.link_faults(info)]
    assert sorted(named) == [(1,), (1, 2), (2,)]
    faults = " | ".join(text for _, text in interconnect.link_faults(info))
    assert f"GPU 1 <-> GPU 2 ({bus_id(1)} <-> {bus_id(2)}): 3 NVLinks, the other pairs 4" in faults
    assert (
        "GPU 1 (bus" in faults and "GPU 2 (bus" in faults and "GPU 0" not in faults and "GPU 3" not in faults
    )


def test_one_gpu_at_x8_is_named() -> None:
    info = nvml.probe(FakeNvml(gpus=8, per_gpu={3: {"nvmlDeviceGetCurrPcieLinkWidth": 8}}))
    assert interconnect.link_faults(info) == [
        ((3,), f"GPU 3 (bus {bus_id(3)}, serial 1650000000003): PCIe link x8 of x16: reseat the card, use a "
               "full-width slot, no riser")
    ]  # fmt: skip


def test_nvlink_without_p2p_is_a_fault_pcie_without_p2p_a_remark() -> None:
    no_p2p = pynvml.NVML_P2P_STATUS_CHIPSET_NOT_SUPPORTED
    info = nvml.probe(FakeNvml(gpus=2, **staged(2, pair_links={(0, 1): 4}, p2p=no_p2p)))
    faults = interconnect.link_faults(info)
    assert faults == [((0, 1), "GPU 0 <-> GPU 1: joined by NVLink but P2P is 'chipset not supported'")]
    info = nvml.probe(FakeNvml(gpus=2, nvmlDeviceGetP2PStatus=no_p2p))
    assert interconnect.link_faults(info) == []
    assert "no P2P between GPUs 0-1 (chipset not supported)" in interconnect.link_warnings(info)[0]


@pytest.mark.parametrize("gen", [4, 5])
def test_a_slot_slower_than_the_gpu_is_a_remark(gen: int) -> None:
    info = nvml.probe(FakeNvml(gpus=2, per_gpu={1: {"nvmlDeviceGetMaxPcieLinkGeneration": gen}}))
    notes = interconnect.link_warnings(info)
    assert ("the slot runs PCIe Gen4, the GPU supports Gen5" in " ".join(notes)) == (gen == 4)
