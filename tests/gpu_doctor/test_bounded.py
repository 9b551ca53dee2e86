"""Driver calls with a time limit (gpu_doctor.bounded): a step that hangs is named and abandoned, each step
has its own budget, and what the probe returns or raises reaches the caller."""

from __future__ import annotations

import threading
import time

import pytest

from gpu_doctor import bounded


def test_the_value_and_the_exception_of_the_probe_reach_the_caller() -> None:
    assert bounded.run(lambda watch: 42, 1.0) == 42
    with pytest.raises(ZeroDivisionError):
        bounded.run(lambda watch: 1 / 0, 1.0)


def test_a_hung_step_is_named_with_the_call_it_was_in() -> None:
    release = threading.Event()

    def probe(watch: bounded.Watch) -> None:
        watch.step("GPU 0", 5.0)
        watch.step("GPU 1", 0.2)
        watch.calling("nvmlDeviceGetMemoryInfo")
        release.wait(30)  # a GPU whose firmware stopped answering

    started = time.monotonic()
    with pytest.raises(bounded.Unanswered) as hung:
        bounded.run(probe, 5.0)
    release.set()
    assert (hung.value.what, hung.value.budget_s, hung.value.call) == (
        "GPU 1",
        0.2,
        "nvmlDeviceGetMemoryInfo",
    )
    assert str(hung.value) == "GPU 1 did not answer within 0.2 s (nvmlDeviceGetMemoryInfo)"
    assert time.monotonic() - started < 3  # the caller went on; the thread was left behind


def test_each_step_has_its_own_budget() -> None:
    """Eight healthy GPUs that each take a while are never cut short by one total limit."""

    def probe(watch: bounded.Watch) -> str:
        for i in range(4):
            watch.step(f"GPU {i}", 0.5)
            time.sleep(0.15)
        return "all answered"

    assert bounded.run(probe, 0.5) == "all answered"  # 0.6 s in all, 0.15 s a step
