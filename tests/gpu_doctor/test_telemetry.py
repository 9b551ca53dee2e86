"""gpu_doctor's telemetry sampler against a fake of the nvidia-ml-py functions (no GPU needed)."""

from __future__ import annotations

import time

import pynvml
import pytest

from gpu_doctor import telemetry
from gpu_doctor.telemetry import TelemetrySampler
from tests.smoke.fake_nvml import FakeNvml


def test_telemetry_sampler_samples_during_the_window() -> None:
    fake = FakeNvml(events=[0, 0, pynvml.nvmlClocksEventReasonHwSlowdown])
    with TelemetrySampler(interval_s=0.01, nvml=fake) as sampler:
        time.sleep(0.1)
    samples = sampler.samples
    assert len(samples) >= 3
    assert samples[0]["util_pct"] == 97 and samples[0]["sm_mhz"] == 1980 and samples[0]["power_w"] == 71.5
    assert [s["t"] for s in samples] == sorted(s["t"] for s in samples)
    assert samples[-1]["clock_events"] == ["hw_slowdown"]
    assert fake.calls[-1] == "nvmlShutdown"


def test_a_gpu_that_does_not_answer_at_the_start_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A firmware hang while telemetry starts: one line naming the GPU and the step, within the time limit."""
    monkeypatch.setattr(telemetry.rules, "timeouts", lambda: {"nvml_gpu_s": 0.2})
    fake = FakeNvml(hang={"nvmlInit": None})
    started = time.monotonic()
    try:
        with pytest.raises(RuntimeError, match=r"GPU 3 \(NVML's start\).*GSP"):
            TelemetrySampler(index=3, nvml=fake).__enter__()
    finally:
        fake.release()
    assert time.monotonic() - started < 5
