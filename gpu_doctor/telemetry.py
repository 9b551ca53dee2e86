"""NVML telemetry of one GPU, sampled in a background thread during a timed window: what the speed checks
judge a window by (a clock-event reason that invalidates it) and plot. Every NVML step of its start and end is
bounded in time like the diagnosis's (a GPU whose firmware stopped answering is named, never waited on)."""

from __future__ import annotations

import threading
import time
from types import ModuleType
from typing import Any

from gpu_doctor import bounded, rules
from gpu_doctor.nvml import decode_clock_events, query, watts
from gpu_doctor.system import import_pynvml


class TelemetrySampler:
    """Samples NVML telemetry of one GPU in a background thread during a timed window.

    Use as a context manager; ``samples`` holds dicts with t (seconds since start), util_pct, sm_mhz,
    power_w, temperature_c and clock_events (list of reason names).
    """

    def __init__(self, index: int = 0, interval_s: float = 0.1, nvml: ModuleType | None = None) -> None:
        self.index, self.interval_s = index, interval_s
        self.nvml = nvml if nvml is not None else import_pynvml()
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.unanswered: str | None = None  # set when the last sample or the shut-down did not answer

    def sample(self) -> dict[str, Any]:
        nvml, h = self.nvml, self._handle
        util = query(nvml.nvmlDeviceGetUtilizationRates, h)
        return {
            "util_pct": getattr(util, "gpu", util),
            "sm_mhz": query(nvml.nvmlDeviceGetClockInfo, h, nvml.NVML_CLOCK_SM),
            "power_w": watts(query(nvml.nvmlDeviceGetPowerUsage, h)),
            "temperature_c": query(nvml.nvmlDeviceGetTemperature, h, nvml.NVML_TEMPERATURE_GPU),
            "clock_events": decode_clock_events(query(nvml.nvmlDeviceGetCurrentClocksEventReasons, h)),
        }

    def _record(self) -> None:
        self.samples.append({"t": round(time.perf_counter() - self._start, 3), **self.sample()})

    def _run(self) -> None:
        while True:
            self._record()
            if self._stop.wait(self.interval_s):
                break

    def _bounded(self, what: str, fn: Any) -> Any:
        """One NVML step in the caller's thread, bounded like the diagnosis's (a hung GPU is named)."""
        limit = rules.timeouts()["nvml_gpu_s"]
        return bounded.run(lambda watch: fn(), limit, f"GPU {self.index} ({what})")

    def __enter__(self) -> TelemetrySampler:
        def start() -> Any:
            self.nvml.nvmlInit()
            return self.nvml.nvmlDeviceGetHandleByIndex(self.index)

        try:
            self._handle = self._bounded("NVML's start", start)
        except bounded.Unanswered as hung:
            raise RuntimeError(
                f"{hung} while starting NVML telemetry: a firmware (GSP) hang? sudo dmesg"
            ) from None
        self._start = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="nvml-telemetry", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:  # one more at the end: throttling that starts late in the window counts too
            self._bounded("a telemetry sample", self._record)
            self._bounded("NVML's shut-down", lambda: query(self.nvml.nvmlShutdown))
        except bounded.Unanswered as hung:
            self.unanswered = str(hung)  # the samples so far stand; the caller's own error (if any) goes on
