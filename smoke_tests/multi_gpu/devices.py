"""The device list, decided once: which devices the multi-GPU checks measure and what each one is called.

Real GPUs: NVML lists two or more; JAX (its CUDA backend) measures them, and each JAX device is joined to its
NVML entry by PCI bus id (CUDA ordinals follow CUDA_DEVICE_ORDER and CUDA_VISIBLE_DEVICES, NVML's indices do
not). Simulated: no NVIDIA GPU, and XLA_FLAGS=--xla_force_host_platform_device_count=N (N >= 2) splits the CPU
into N JAX devices: every check runs the same way, and its figures prove the method, not a speed. Otherwise
there is one device and the multi-GPU checks are n/a.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpu_doctor.devices import normalize_bus_id

FORCE_FLAG = re.compile(r"--xla_force_host_platform_device_count=(\d+)")
# A test hook (tests/smoke/pretend_gpus.py): simulated devices stand in for a staged machine's NVML GPUs, by
# position, so that a staged topology or a staged sick GPU is named as the real one would be.
STAND_IN_FOR_NVML = False


@dataclass(frozen=True)
class Plan:
    """What the multi-GPU checks will measure: mode "gpu" or "simulated" and how many devices, or why n/a."""

    mode: str | None
    count: int = 0
    reason: str = ""


def simulated_count(environ: Mapping[str, str]) -> int:
    match = FORCE_FLAG.search(environ.get("XLA_FLAGS", ""))
    return int(match.group(1)) if match else 0


def plan(system: Mapping[str, Any], environ: Mapping[str, str]) -> Plan:
    """Decided from NVML's picture and XLA_FLAGS, before any framework starts."""
    gpus = [g for g in system.get("gpus", []) if not g.get("error")]
    forced = simulated_count(environ)
    if STAND_IN_FOR_NVML and forced >= 2:
        return Plan("simulated", forced)
    if len(gpus) >= 2:
        return Plan("gpu", len(gpus))
    if not gpus and forced >= 2:
        return Plan("simulated", forced)
    if gpus:
        return Plan(
            None, 1, "n/a: one GPU (the speed checks measure it); the multi-GPU checks need two or more"
        )
    return Plan(None, 1, "n/a: one device (no NVIDIA GPU, and XLA_FLAGS does not split the CPU: XLA_FLAGS="
                         "--xla_force_host_platform_device_count=4 simulates 4 devices)")  # fmt: skip


@dataclass
class Device:
    """One device the checks measure: JAX's index, what it is, and its NVML facts when it is a real GPU."""

    index: int
    simulated: bool
    name: str
    nvml: dict[str, Any] = field(default_factory=dict)

    @property
    def group(self) -> str:
        """Identical siblings share a group: the same NVML name (the same model and memory size)."""
        return self.name

    def label(self) -> str:
        if not self.nvml:
            return f"simulated device {self.index}"
        n = self.nvml
        where = f"GPU {n.get('index', self.index)} (bus {n.get('pci_bus_id')}, serial {n.get('serial')})"
        return where + (" [simulated stand-in]" if self.simulated else "")

    def as_dict(self) -> dict[str, Any]:
        n = self.nvml
        return {
            "index": self.index,
            "simulated": self.simulated,
            "name": self.name,
            "nvml_index": n.get("index"),
            "pci_bus_id": n.get("pci_bus_id"),
            "uuid": n.get("uuid"),
            "serial": n.get("serial"),
        }


def join(reported: list[dict[str, Any]], system: Mapping[str, Any]) -> tuple[list[Device], list[str]]:
    """The measured devices (`reported` by the JAX child: id, platform, kind, pci_bus_id) joined to NVML's
    GPUs; returns (devices, problems): a GPU JAX cannot see, or a JAX device NVML does not list."""
    gpus = [g for g in system.get("gpus", []) if not g.get("error")]
    by_bus = {normalize_bus_id(g.get("pci_bus_id")): g for g in gpus}
    devices, problems = [], []
    for position, d in enumerate(reported):
        if d.get("platform") == "cpu":
            stand_in = gpus[position] if STAND_IN_FOR_NVML and position < len(gpus) else {}
            devices.append(Device(d["id"], True, stand_in.get("name") or "simulated CPU device", stand_in))
            continue
        gpu = by_bus.get(normalize_bus_id(d.get("pci_bus_id")))
        if gpu is None:
            problems.append(
                f"JAX device {d['id']} ({d.get('kind')}, bus {d.get('pci_bus_id')}) is not in NVML's list"
            )
            gpu = {}
        devices.append(Device(d["id"], False, gpu.get("name") or str(d.get("kind")), gpu))
    seen = {normalize_bus_id(d.nvml.get("pci_bus_id")) for d in devices if d.nvml}
    for g in gpus:
        if normalize_bus_id(g.get("pci_bus_id")) not in seen and not all(d.simulated for d in devices):
            where = f"{g.get('name')}, bus {g.get('pci_bus_id')}"
            problems.append(f"GPU {g['index']} ({where}) is not visible to JAX (CUDA_VISIBLE_DEVICES?)")
    return devices, problems


def by_index(devices: list[Device]) -> dict[int, Device]:
    return {d.index: d for d in devices}
