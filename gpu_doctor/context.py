"""What the layers share while a diagnosis runs: the OS boundary, the framework build, the facts so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpu_doctor import devices
from gpu_doctor.build import Build
from gpu_doctor.system import Boundary


@dataclass
class Context:
    boundary: Boundary
    backend: str
    build: Build
    ask_framework: bool = True  # import the framework (in a child process) and list its devices
    ask_compute: bool = True  # run the small GPU computations
    wsl: bool = False
    container: bool = False
    pci_gpus: list[dict[str, Any]] = field(default_factory=list)
    kernel_module_version: str | None = (
        None  # the loaded NVIDIA module's version (/proc/driver/nvidia/version)
    )
    kernel_module_flavour: str | None = None  # "open" or "proprietary"
    nvml: dict[str, Any] = field(default_factory=dict)  # gpu_doctor.nvml.probe()'s picture
    cuda: dict[str, Any] = field(default_factory=dict)  # the CUDA driver layer's facts (devices by ordinal)
    child: dict[str, Any] = field(default_factory=dict)  # what the framework's child process reported

    @property
    def where(self) -> str:
        """host | container | wsl: remedies differ."""
        return "wsl" if self.wsl else "container" if self.container else "host"

    def visible_gpus(self) -> list[dict[str, Any]]:
        """The GPUs a framework will use, in its order (its GPU 0 first): {"ordinal", "label",
        "compute_capability", ...}. From the CUDA driver layer (CUDA's own ordinals, matched to NVML by bus
        id) when it ran, else from NVML's picture through CUDA_VISIBLE_DEVICES."""
        nvml_gpus = self.nvml.get("gpus", [])
        if self.cuda.get("devices"):
            found = []
            for dev in self.cuda["devices"]:
                gpu = devices.physical(self.cuda["devices"], nvml_gpus, dev["ordinal"])
                cc = dev["compute_capability"]
                found.append({**gpu, "ordinal": dev["ordinal"], "compute_capability": cc, "label": label(gpu),
                              "short": label(gpu, short=True)})  # fmt: skip
            return found
        shown = devices.visible(nvml_gpus, self.boundary.env).gpus
        return [
            {
                **g,
                "ordinal": i,
                "label": label({**g, "cuda_ordinal": i}),
                "short": label({**g, "cuda_ordinal": i}, short=True),
            }
            for i, g in enumerate(shown)
            if isinstance(g.get("compute_capability"), str) and g["compute_capability"][:1].isdigit()
        ]


def label(gpu: dict[str, Any], short: bool = False) -> str:
    """How a report names the GPU a framework calls GPU N: "GPU 0" when CUDA's and NVML's numbers agree, else
    "CUDA GPU 0 = GPU 1"; with its bus id and UUID unless ``short``."""
    ordinal, index = gpu.get("cuda_ordinal"), gpu.get("index")
    head = f"GPU {index}" if short else devices.describe(gpu)
    if ordinal is None or ordinal == index:
        return head
    return f"CUDA GPU {ordinal} = {head}"
