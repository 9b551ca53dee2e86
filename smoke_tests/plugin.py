"""pytest plugin of the smoke suite: gives checks a ``check`` record and writes one JSON line per check.

The runner loads it with ``-p smoke_tests.plugin``; results go to $SMOKE_RESULTS as they happen, so a
crash or a hang of one check never loses the results of the others.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from smoke_tests import timing
from smoke_tests.speed import InvalidMeasurement

_KEY = pytest.StashKey["CheckRecord"]()
_SETUP = pytest.StashKey[tuple[float, float]]()  # the setup phase's start (epoch seconds) and duration


class CheckRecord:
    """What a check reports besides pass/fail: figures, details, plots, telemetry, warnings."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.figures: dict[str, dict[str, Any]] = {}
        self.details: dict[str, Any] = {}
        self.plots: list[str] = []
        self.telemetry: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.seconds = timing.empty()  # where the check's own time went, by category (timing.CATEGORIES)

    def figure(self, name: str, value: float, unit: str, better: str | None = None, **extra: Any) -> None:
        """A number for the report; ``better`` ("higher"/"lower") makes it comparable with a baseline."""
        self.figures[name] = {"value": value, "unit": unit, "better": better, **extra}

    def detail(self, key: str, value: Any) -> None:
        self.details[key] = value

    def plot(self, path: Path) -> None:
        self.plots.append(os.path.relpath(path, self.out_dir))

    def add_telemetry(self, label: str, samples: list[dict[str, Any]]) -> None:
        self.telemetry.append({"label": label, "samples": samples})

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def time(self, category: str, seconds: float) -> None:
        """Count `seconds` of this check toward `category`; what is not counted is "other"."""
        if category not in self.seconds:
            raise ValueError(f"unknown time category {category!r}: one of {', '.join(self.seconds)}")
        self.seconds[category] += max(0.0, seconds)

    def breakdown(self, setup_s: float, call_s: float) -> dict[str, float]:
        """Seconds per category: the fixtures' set-up is start-up, the call's uncounted rest is other."""
        out = dict(self.seconds)
        out["start-up"] += setup_s
        out["other"] += max(0.0, call_s - sum(self.seconds.values()))
        return {k: round(v, 3) for k, v in out.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "figures": self.figures,
            "details": self.details,
            "plots": self.plots,
            "telemetry": self.telemetry,
            "warnings": self.warnings,
        }


def out_dir() -> Path:
    return Path(os.environ.get("SMOKE_OUT", "reports/smoke/adhoc")).resolve()


@pytest.fixture
def check(request: pytest.FixtureRequest) -> CheckRecord:
    record = CheckRecord(out_dir())
    request.node.stash[_KEY] = record
    return record


def _message(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        # The first line: pytest's assertion introspection follows on the next lines.
        first = crash.message.strip().splitlines()[0].removeprefix("Failed: ")
        if first.startswith("Timeout (>"):
            limit = first.removeprefix("Timeout (>").split(")")[0]
            return (
                f"the check hung and was stopped after {limit} (check_timeout_s in smoke_tests/settings.toml)"
            )
        return first
    return str(report.longrepr or "").strip().splitlines()[-1] if report.longrepr else ""


def _status(report: pytest.TestReport, call: pytest.CallInfo[Any] | None) -> str:
    if report.skipped:
        return "skipped"
    if report.failed:
        if call is not None and call.excinfo is not None and call.excinfo.errisinstance(InvalidMeasurement):
            return "invalid"
        return "failed" if report.when == "call" else "error"
    return "passed"


def _progress(line: dict[str, Any]) -> None:
    # pytest captures fds 1 and 2, so progress goes to a pipe the runner hands over ($SMOKE_PROGRESS_FD).
    fd = os.environ.get("SMOKE_PROGRESS_FD")
    note = f": {line['message'][:90]}" if line["message"] else ""
    text = f"  {line['status'].upper():8} {line['category']}/{line['name']} ({line['duration_s']} s){note}\n"
    if fd:
        with contextlib.suppress(OSError):  # the runner went away: progress is optional
            os.write(int(fd), text.encode())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> pytest.TestReport:
    report = yield
    if report.when == "setup":
        item.stash[_SETUP] = (call.start, report.duration)
    # One line per check: at the call phase, or at setup when setup failed or skipped.
    if report.when == "call" or (report.when == "setup" and not report.passed):
        record = item.stash.get(_KEY, None)
        status = _status(report, call)
        started, setup_s = item.stash.get(_SETUP, (call.start, 0.0))
        call_s = report.duration if report.when == "call" else 0.0
        line = {
            "id": item.nodeid,
            "name": item.name.removeprefix("test_"),
            "category": Path(str(item.path)).stem.removeprefix("test_").split("_", 1)[-1],
            "status": status,
            "duration_s": round(report.duration, 2),
            "setup_s": round(setup_s, 2),
            "started": round(started, 3),  # epoch seconds: the report's timeline
            "ended": round(call.stop, 3),
            "message": "" if status == "passed" else _message(report),
            **(record.as_dict() if record else {}),
            "breakdown": (record or CheckRecord(out_dir())).breakdown(setup_s, call_s),
        }
        results = os.environ.get("SMOKE_RESULTS")
        if results:
            with open(results, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line, default=str) + "\n")
        _progress(line)
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Taken here when the framework is already imported (cheap); otherwise the runner takes it itself.
    framework = os.environ.get("KERAS_BACKEND", "tensorflow")
    if not os.environ.get("SMOKE_RESULTS") or framework not in sys.modules:
        return
    from workloads.fingerprint import environment_fingerprint

    try:
        (out_dir() / "fingerprint.json").write_text(json.dumps(environment_fingerprint(), default=str))
    except Exception as err:  # the runner takes the fingerprint itself then
        _progress(
            {
                "status": "note",
                "category": "suite",
                "name": "fingerprint",
                "duration_s": 0,
                "message": f"fingerprint failed in the check process: {err}",
            }
        )
