"""What a diagnosis is made of: layers with a status, a cause and a remedy, in stack order."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from gpu_doctor.exit_codes import EXIT_OK, EXIT_THRESHOLD_FAILED

OK, WARN, BROKEN, NA, NOT_CHECKED = "OK", "WARN", "BROKEN", "n/a", "not checked"

# Bottom-up. Health comes right after NVML: it reads NVML's picture and the kernel log, and a faulty GPU (ECC,
# Xid) is usually why the layers above fail, so its cause must win over theirs. Memory comes before the
# framework: when another process holds the GPU memory, the framework's "cuDNN failed to initialize" must be
# blamed on that, not on the libraries. The container runtime (Docker, CDI) is last: the host's own stack does
# not need it.
LAYERS = (
    ("hardware", "hardware"),
    ("kernel_module", "kernel module"),
    ("device_nodes", "device nodes"),
    ("nvml", "NVML"),
    ("health", "health"),
    ("cuda_driver", "CUDA driver"),
    ("cuda_libraries", "CUDA libraries"),
    ("memory", "memory"),
    ("framework", "framework"),
    ("compute", "compute"),
    ("containers", "containers"),
)
# Layers whose BROKEN does not stop the ones above: they only read what is known (the health of a GPU does not
# keep CUDA from starting), and the layers above still say what they see. The first broken layer is the
# verdict.
INDEPENDENT = frozenset({"health", "containers"})
# Layers that run even above a broken one: the container runtime needs nothing the GPU stack gives.
ALWAYS_RUN = frozenset({"containers"})
TITLES = dict(LAYERS)


@dataclass
class Layer:
    """One layer's verdict. ``summary`` says what was found; ``cause`` and ``remedy`` when it is not OK."""

    name: str
    status: str = NA
    summary: str = ""
    cause: str | None = None
    remedy: str | None = None
    notes: list[str] = field(default_factory=list)  # warnings and remarks that do not change the status
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return TITLES.get(self.name, self.name)

    def broken(self, cause: str, remedy: str, summary: str | None = None) -> Layer:
        self.status, self.cause, self.remedy = BROKEN, cause, remedy
        if summary is not None:
            self.summary = summary
        return self

    def warn(self, note: str, remedy: str | None = None) -> None:
        """A condition worth a look: the layer becomes WARN (unless already BROKEN)."""
        self.notes.append(note)
        if self.status == OK:
            self.status = WARN
            self.cause, self.remedy = note, remedy


@dataclass
class Diagnosis:
    layers: list[Layer]
    gpu_found: bool
    no_gpu_reason: str | None = None
    backend: str = ""
    nvml: dict[str, Any] = field(default_factory=dict)  # NVML's picture: the report's GPU section
    staged_root: str | None = None  # set when the GPU_DOCTOR_ROOT test hook pointed the probes elsewhere
    duration_s: float = 0.0

    @property
    def first_broken(self) -> Layer | None:
        return next((layer for layer in self.layers if layer.status == BROKEN), None)

    @property
    def healthy(self) -> bool:
        return self.first_broken is None

    def layer(self, name: str) -> Layer:
        return next(layer for layer in self.layers if layer.name == name)

    def exit_code(self) -> int:
        """0 healthy (or no NVIDIA GPU at all), 1 a layer is broken (gpu_doctor/exit_codes.py)."""
        return EXIT_OK if self.healthy else EXIT_THRESHOLD_FAILED

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Diagnosis:
        """The diagnosis `to_dict` wrote (the smoke runner hands its own to its check process this way)."""
        fields = {k: v for k, v in data.items() if k not in ("healthy", "first_broken")}
        return cls(**{**fields, "layers": [Layer(**layer) for layer in data["layers"]]})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["healthy"] = self.healthy
        data["first_broken"] = self.first_broken.name if self.first_broken else None
        return data
