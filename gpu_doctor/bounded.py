"""Driver calls with a time limit. A GPU whose firmware stops answering (GSP RPC time-outs, Xid 119) makes
every NVML or CUDA call wait about 45 s, in the kernel, where no signal reaches it
(NVIDIA/open-gpu-kernel-modules#446). So the probes run in a daemon thread that is abandoned when a step takes
longer than its budget: the diagnosis names the step that hung ("GPU 0 did not answer NVML within 10 s") and
goes on to write its report.

A probe announces each step (``watch.step("GPU 0", 10)``); each step gets its own budget, so eight healthy
GPUs are never cut short by one total limit, and a hung one is named.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Unanswered(Exception):
    """A step did not finish within its budget; ``what`` names it ("GPU 0"), ``call`` the function it was
    in."""

    def __init__(self, what: str, budget_s: float, call: str | None = None) -> None:
        super().__init__(f"{what} did not answer within {budget_s:g} s" + (f" ({call})" if call else ""))
        self.what, self.budget_s, self.call = what, budget_s, call


class Watch:
    """What the probe is doing now and until when it may take; written by the probe, read by the watchdog."""

    def __init__(self, budget_s: float, what: str = "the driver") -> None:
        self._lock = threading.Lock()
        self.what, self.budget_s, self.call = what, budget_s, None
        self.deadline = time.monotonic() + budget_s

    def step(self, what: str, budget_s: float) -> None:
        with self._lock:
            self.what, self.budget_s, self.call = what, budget_s, None
            self.deadline = time.monotonic() + budget_s

    def calling(self, name: str) -> None:
        """The function the step is in now (no new budget): named when it hangs."""
        self.call = name

    def overdue(self) -> Unanswered | None:
        with self._lock:
            if time.monotonic() > self.deadline:
                return Unanswered(self.what, self.budget_s, self.call)
        return None


class _Outcome(Generic[T]):
    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None


def run(probe: Callable[[Watch], T], budget_s: float, what: str = "the driver", poll_s: float = 0.05) -> T:
    """``probe(watch)`` in a daemon thread; its value, or its exception, or ``Unanswered`` when the step it is
    in overruns its budget (the thread is then left behind: it holds no lock of ours and dies with the
    process)."""
    watch, outcome = Watch(budget_s, what), _Outcome[T]()

    def body() -> None:
        try:
            outcome.value = probe(watch)
        except BaseException as err:  # handed to the caller, whatever it is
            outcome.error = err
        finally:
            outcome.done.set()

    threading.Thread(target=body, name=f"bounded: {what}", daemon=True).start()
    while not outcome.done.wait(poll_s):
        late = watch.overdue()
        if late is not None:
            raise late
    if outcome.error is not None:
        raise outcome.error
    return outcome.value  # type: ignore[return-value]
