"""A Ctrl-C that lands inside C code (numpy, a framework) comes back wrapped: still an interrupted run."""

from __future__ import annotations

import json

import pytest

from gpu_doctor.exit_codes import EXIT_INTERRUPTED
from workloads import errors
from workloads.harness.run import RunContext, execute


def wrapped_interrupt() -> SystemError:
    """What CPython raises when a C function returns a value with our handler's KeyboardInterrupt set."""
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as cause:
            raise SystemError("<built-in method> returned a result with an exception set") from cause
    except SystemError as exc:
        return exc


def test_a_wrapped_interrupt_is_an_interrupted_run_with_its_result(tmp_path) -> None:
    ctx = RunContext(workload="moons", out_dir=tmp_path, backend="jax")

    def body(c: RunContext) -> None:
        c.record.history = {"loss": [0.7, 0.6]}
        raise wrapped_interrupt()

    assert execute(ctx, body, summary=False) == EXIT_INTERRUPTED
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "interrupted" and result["history"]["loss"] == [0.7, 0.6]


def test_any_other_error_is_not_taken_for_an_interrupt(tmp_path) -> None:
    """The negative control: a SystemError of its own is a bug to show, not a Ctrl-C."""
    ctx = RunContext(workload="moons", out_dir=tmp_path, backend="jax")
    bug = SystemError("a bug")
    assert not errors.from_interrupt(bug) and errors.from_interrupt(wrapped_interrupt())

    def body(c: RunContext) -> None:
        raise bug

    with pytest.raises(SystemError, match="a bug"):
        execute(ctx, body, summary=False)
