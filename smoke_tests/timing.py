"""Where the smoke test's time goes: the categories of each check's breakdown (report.json `breakdown`, one
stacked bar per check in report.html), and how a workload's own phases (result.json `timings.phases`) map
onto them."""

from __future__ import annotations

from typing import Any

# Category: (what it holds, its colour in the HTML report).
CATEGORIES: dict[str, tuple[str, str]] = {
    "start-up": (
        "the check's fixtures (the framework's import in the check process) and waiting for a workload "
        "worker to be ready; a workload run as a subprocess: the interpreter and its imports",
        "#9e9e9e",
    ),
    "data": ("loading and preparing the data", "#4e79a7"),
    "compile": (
        "until the first compiled call returned: tracing, compilation and that call (first epoch's start)",
        "#f28e2b",
    ),
    "steady": ("training after that first call (and the timed repeats of a speed check)", "#59a14f"),
    "evaluation": ("evaluating the trained models and what the check measures on them", "#b07aa1"),
    "plots": ("drawing and saving figures", "#edc948"),
    "other": ("the rest: model building outside training, result files, the summary", "#d3d3d3"),
}


def empty() -> dict[str, float]:
    return dict.fromkeys(CATEGORIES, 0.0)


def workload_breakdown(
    result: dict[str, Any] | None, wall_s: float, worker_wait_s: float, worker: bool
) -> dict[str, float]:
    """A workload check's seconds per category, from the run's result.json and the check's wall time.

    The run's phases (data, train, evaluate, plots, other) add up to its own time; train is split at
    `compile_s` (the first compiled call) into compile and steady. What the run's clock did not see is
    start-up: with a worker, the wait for it to be ready (the rest, dispatch and the summary, is other);
    as a subprocess, the interpreter's start-up, the framework's import and the summary.
    """
    out = empty()
    timings = (result or {}).get("timings") or {}
    phases = timings.get("phases") or {}
    run_s = sum(v for v in phases.values() if isinstance(v, int | float))
    train = float(phases.get("train", 0.0))
    first_call = timings.get("compile_s") or timings.get("first_epoch_s") or 0.0
    out["compile"] = min(float(first_call), train)
    out["steady"] = train - out["compile"]
    out["data"] = float(phases.get("data", 0.0))
    out["evaluation"] = float(phases.get("evaluate", 0.0))
    out["plots"] = float(phases.get("plots", 0.0))
    out["other"] = float(phases.get("other", 0.0))
    outside = max(0.0, wall_s - run_s)
    if worker:
        out["start-up"] = min(worker_wait_s, outside)
        out["other"] += outside - out["start-up"]
    else:
        out["start-up"] = outside
    return {k: round(v, 3) for k, v in out.items()}


def totals(checks: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds per category over all checks."""
    out = empty()
    for check in checks:
        for key, seconds in (check.get("breakdown") or {}).items():
            out[key] = out.get(key, 0.0) + seconds
    return {k: round(v, 1) for k, v in out.items()}


def suite_timeline(started: float, launched: float, ended: float, checks: list[dict[str, Any]]) -> dict:
    """The whole run in epoch seconds: before the check process, its start-up (interpreter, pytest, the
    checks' imports, collection), the checks, the gaps between them, and after them (the report)."""
    spans = [(c["started"], c["ended"]) for c in checks if "started" in c and "ended" in c]
    first = min((a for a, _ in spans), default=ended)
    last = max((b for _, b in spans), default=ended)
    in_checks = sum(b - a for a, b in spans)
    return {
        "total_s": round(ended - started, 2),
        "before_checks_s": round(launched - started, 2),  # options, the GPU probe
        "check_process_start_s": round(max(0.0, first - launched), 2),
        "checks_s": round(in_checks, 2),
        "between_checks_s": round(max(0.0, last - first - in_checks), 2),
        "after_checks_s": round(max(0.0, ended - last), 2),  # the check process's exit, the report
    }
