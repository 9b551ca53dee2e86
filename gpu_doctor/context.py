"""What the layers share while a diagnosis runs: the OS boundary, the framework build, the facts so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpu_doctor.build import Build
from gpu_doctor.system import Boundary


@dataclass
class Context:
    boundary: Boundary
    backend: str
    build: Build
    ask_framework: bool = True  # import the framework and list its devices
    ask_compute: bool = True  # run the small GPU computations
    wsl: bool = False
    container: bool = False
    pci_gpus: list[dict[str, Any]] = field(default_factory=list)
    nvml: dict[str, Any] = field(default_factory=dict)  # gpu_doctor.nvml.probe()'s picture
    cuda: dict[str, Any] = field(default_factory=dict)  # the CUDA driver layer's facts

    @property
    def where(self) -> str:
        """host | container | wsl: remedies differ."""
        return "wsl" if self.wsl else "container" if self.container else "host"

    def compute_capabilities(self) -> list[tuple[int, str]]:
        """(index, "9.0") of each GPU, from NVML (or the CUDA driver when NVML has no answer)."""
        found = [
            (g["index"], g["compute_capability"])
            for g in self.nvml.get("gpus", [])
            if isinstance(g.get("compute_capability"), str) and g["compute_capability"][0].isdigit()
        ]
        if not found:
            found = [(d["index"], d["compute_capability"]) for d in self.cuda.get("devices", [])]
        return found
