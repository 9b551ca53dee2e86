"""The smoke test's report, typed: what the runner gathers, built once by `runner.build_report`, written as
report.json (`to_json`: the same keys, in the same order, as before it was a class) and rendered from that
JSON by smoke_tests/report.py (terminal, HTML), as fleet renders the hosts' report.json files read back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1


@dataclass
class SmokeReport:
    created: str  # ISO 8601, UTC
    level: str
    backend: str
    require_gpu: bool
    gpu: dict[str, Any]  # NVML's picture (the diagnosis' `nvml`)
    diagnosis: dict[str, Any]  # gpu_doctor's Diagnosis.to_dict()
    checks: list[dict[str, Any]]  # one record per check (smoke_tests/plugin.py), unfinished ones included
    devices: list[dict[str, Any]]
    counts: dict[str, int]
    fingerprint: dict[str, Any]
    verdict: str = "NOT RUN"  # PASSED, FAILED, NOT RUN, INTERRUPTED
    duration_s: float = 0.0
    time: dict[str, float] = field(default_factory=dict)  # seconds in the checks, by category
    charts: list[str] = field(default_factory=list)
    not_written: list[dict[str, Any]] = field(default_factory=list)  # files a full disk cost
    comparison: dict[str, Any] | None = None  # against --baseline; absent from report.json without one
    timeline: dict[str, Any] | None = None
    incomplete: dict[str, Any] | None = None  # how a run that did not finish ended
    notes: list[str] = field(default_factory=list)
    warmup: dict[str, Any] | None = None
    interrupted: str = ""  # the stop signal's name; absent from report.json when the run was not stopped
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        """report.json: every key always there, except comparison, timeline, incomplete and interrupted,
        which are there only when they apply."""
        data: dict[str, Any] = {
            "schema_version": self.schema_version,
            "created": self.created,
            "level": self.level,
            "backend": self.backend,
            "require_gpu": self.require_gpu,
            "gpu": self.gpu,
            "diagnosis": self.diagnosis,
            "checks": self.checks,
            "devices": self.devices,
            "counts": self.counts,
            "fingerprint": self.fingerprint,
            "charts": self.charts,
            "not_written": self.not_written,
        }
        if self.comparison is not None:
            data["comparison"] = self.comparison
        data.update(verdict=self.verdict, duration_s=self.duration_s, time=self.time)
        if self.timeline is not None:
            data["timeline"] = self.timeline
        if self.incomplete:
            data["incomplete"] = self.incomplete
        data.update(notes=self.notes, warmup=self.warmup)
        if self.interrupted:
            data["interrupted"] = self.interrupted
        return data
