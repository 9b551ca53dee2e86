"""Measurement rules of the speed checks: statistics, the throttle rule, the expected-values table."""

from __future__ import annotations

import statistics
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import Any

from smoke_tests.settings import HERE, settings


class InvalidMeasurement(AssertionError):
    """A timed window that cannot be trusted (the GPU throttled): reported as invalid, never as passed."""


@cache
def expected_table() -> dict[str, Any]:
    return tomllib.loads((HERE / "expected_gpus.toml").read_text())


def summarize(values: list[float]) -> dict[str, float]:
    """Median and spread of repeated measurements (spread = (max - min) / median)."""
    if not values:
        raise ValueError("no measurements")
    median = statistics.median(values)
    return {
        "median": median,
        "min": min(values),
        "max": max(values),
        "spread": (max(values) - min(values)) / median if median else 0.0,
        "n": len(values),
    }


def time_repeats(run: Callable[[], None], repeats: int, warmup: int = 1) -> list[float]:
    """Wall seconds of ``run`` per repeat, after ``warmup`` untimed calls; ``run`` must synchronize."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def throttle_events(samples: list[dict[str, Any]], invalidating: list[str] | None = None) -> list[str]:
    """Invalidating clock-event reasons seen in any telemetry sample of a timed window."""
    bad = set(invalidating if invalidating is not None else settings()["throttle"]["invalidating"])
    seen: set[str] = set()
    for sample in samples:
        reasons = sample.get("clock_events")
        if isinstance(reasons, list):
            seen.update(r for r in reasons if r in bad)
    return sorted(seen)


def check_not_throttled(windows: Mapping[str, list[dict[str, Any]]]) -> None:
    """The throttle rule of every speed check: a measurement is invalid, never passed, when the GPU throttled
    in any of its timed windows (`windows`: each window's label and its telemetry samples)."""
    throttled = [
        f"{label} ({', '.join(events)})"
        for label, samples in windows.items()
        if (events := throttle_events(samples))
    ]
    if throttled:
        raise InvalidMeasurement(f"invalid, the GPU throttled during {'; '.join(throttled)}")


def expected_for(gpu_name: str, table: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The expected-speed entry for an NVML device name, with ``expected_<precision>`` filled in."""
    table = table if table is not None else expected_table()
    for key, entry in table["gpus"].items():
        if any(m in gpu_name for m in entry["match"]):
            out = {"model": key, "derate": table["derate"], **entry}
            for precision, efficiency in table["efficiency"].items():
                measured = entry.get(f"measured_{precision}")
                peak = entry.get(f"peak_{precision}")
                if measured is not None:
                    out[f"expected_{precision}"], out[f"basis_{precision}"] = measured, "measured"
                elif peak is not None:
                    out[f"expected_{precision}"] = round(peak * efficiency, 1)
                    out[f"basis_{precision}"] = f"published peak x {efficiency}"
            return out
    return None


def judge(value: float, expected: float | None, derate: float) -> tuple[bool, str]:
    """Pass when ``value`` >= derate x expected; with no expected figure, report only."""
    if expected is None:
        return True, f"{value:.3g} (no expected figure for this device: reported only)"
    floor = derate * expected
    verdict = "ok" if value >= floor else "too slow"
    return value >= floor, f"{value:.3g} vs expected {expected:.3g} (floor {floor:.3g}): {verdict}"


PCIE_LANE_GBS = {1: 0.25, 2: 0.5, 3: 0.985, 4: 1.969, 5: 3.938, 6: 7.563}


def pcie_theoretical_gbs(gen: Any, width: Any) -> float | None:
    """Theoretical one-direction PCIe bandwidth in GB/s of a link (per-lane rate after encoding)."""
    if isinstance(gen, int) and isinstance(width, int) and gen in PCIE_LANE_GBS:
        return round(PCIE_LANE_GBS[gen] * width, 1)
    return None


class Window:
    """What a timed window saw: the NVML telemetry samples (none on a CPU)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.samples: list[dict[str, Any]] = []


@contextmanager
def timed_window(check: Any, label: str, gpu: bool, index: int = 0) -> Iterator[Window]:
    """Sample NVML telemetry of GPU ``index`` (NVML's index of the GPU the framework computes on) during a
    timed window (GPU only) and keep it in the check's record."""
    window = Window(label)
    if not gpu:
        yield window
        return
    from gpu_doctor.telemetry import TelemetrySampler

    with TelemetrySampler(index, interval_s=settings()["throttle"]["sample_interval_s"]) as sampler:
        yield window
    window.samples = sampler.samples
    check.add_telemetry(label, sampler.samples)
