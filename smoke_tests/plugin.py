"""pytest plugin of the smoke suite: its options, a ``check`` record for each check, one JSON line per check.

The runner loads it with ``-p smoke_tests.plugin`` and hands over everything the checks need as the options
below (``--smoke-out``, ``--smoke-level``, ...) on the check process's command line. Results go to
``--smoke-results`` as they happen, so a crash or a hang of one check never loses the results of the others,
and to the runner through the progress pipe, one JSON message per line ({"text": the progress line, "record":
the check's result, "lost": a file that could not be written}), so a full disk does not lose them either.
``--smoke-journal`` gets the checks collected and each check as it starts (and stderr a ``STARTED`` line), so
that when the check process dies the runner knows which check was running, what it said last, and which
checks never ran: a run that did not finish is never a pass.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from smoke_tests import framework_ops, settings, timing
from smoke_tests.speed import InvalidMeasurement
from smoke_tests.worker import ENTRY, ISOLATIONS

_KEY = pytest.StashKey["CheckRecord"]()
_SETUP = pytest.StashKey[tuple[float, float]]()  # the setup phase's start (epoch seconds) and duration
_OPTIONS = pytest.StashKey["SmokeOptions"]()


# --- What the runner hands its check process ----------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("smoke_tests", "the smoke checks (python -m smoke_tests sets these)")
    group.addoption(
        "--smoke-out",
        type=Path,
        default=Path("reports/smoke/adhoc"),
        help="report folder: what the checks write (plots, workload output, system.json)",
    )
    group.addoption(
        "--smoke-level", default=settings.DEFAULT_LEVEL, help="a level of smoke_tests/settings.toml [levels]"
    )
    group.addoption("--smoke-results", type=Path, help="append one JSON line per finished check to this file")
    group.addoption(
        "--smoke-journal", type=Path, help="append the checks collected and each check as it starts here"
    )
    group.addoption("--smoke-progress-fd", type=int, help="write one progress line per check to this fd")
    group.addoption("--smoke-data", type=Path, help="MNIST IDX folder for the workloads")
    group.addoption("--smoke-require-gpu", action="store_true", help="no NVIDIA GPU is a failure")
    group.addoption(
        "--smoke-diagnosis",
        type=Path,
        help="the runner's GPU diagnosis (diagnosis.json), read instead of probing again (default: probe)",
    )
    group.addoption("--smoke-seed", type=int, help="the checks' and the workloads' seed (default: settings')")
    group.addoption(
        "--smoke-isolation",
        choices=ISOLATIONS,
        default=ISOLATIONS[0],
        help="the workloads in one worker process, or each in a fresh interpreter",
    )
    group.addoption(
        "--smoke-worker-entry",
        default=ENTRY,
        help="test hook: a stand-in for the workloads' CLI (module:function) that the worker runs",
    )


@dataclass(frozen=True)
class SmokeOptions:
    """The check process's settings, from its command line (the defaults are the options')."""

    out: Path
    level: settings.Level  # resolved once, from --smoke-level
    results: Path | None
    journal: Path | None
    progress_fd: int | None
    data: Path | None
    require_gpu: bool
    diagnosis: Path | None  # None: the checks run on their own (pytest directly) and probe the GPU
    seed: int
    isolation: str
    worker_entry: str


def options(config: pytest.Config) -> SmokeOptions:
    """This session's smoke options, read once from the command line."""
    if _OPTIONS not in config.stash:
        get = config.getoption
        seed = get("smoke_seed")
        config.stash[_OPTIONS] = SmokeOptions(
            out=get("smoke_out").resolve(),
            level=_level(get("smoke_level")),
            results=get("smoke_results"),
            journal=get("smoke_journal"),
            progress_fd=get("smoke_progress_fd"),
            data=get("smoke_data"),
            require_gpu=get("smoke_require_gpu"),
            diagnosis=get("smoke_diagnosis"),
            seed=settings.seed() if seed is None else seed,
            isolation=get("smoke_isolation"),
            worker_entry=get("smoke_worker_entry"),
        )
    return config.stash[_OPTIONS]


def _level(name: str) -> settings.Level:
    try:
        return settings.resolve_level(name)
    except ValueError as err:  # a bad settings file too (SettingsError): pytest's one-line usage error
        raise pytest.UsageError(f"--smoke-level: {err}") from None


@pytest.fixture(scope="session")
def smoke_options(pytestconfig: pytest.Config) -> SmokeOptions:
    return options(pytestconfig)


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


@pytest.fixture
def check(request: pytest.FixtureRequest) -> CheckRecord:
    record = CheckRecord(options(request.config).out)
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


def _progress(config: pytest.Config, line: dict[str, Any], **message: Any) -> None:
    """The progress line to the runner, with `message`'s parts ("record", "lost") beside it."""
    # pytest captures fds 1 and 2, so progress goes to a pipe the runner hands over (--smoke-progress-fd).
    fd = options(config).progress_fd
    note = f": {line['message'][:90]}" if line["message"] else ""
    text = f"  {line['status'].upper():8} {line['category']}/{line['name']} ({line['duration_s']} s){note}\n"
    if fd is not None:
        data = (json.dumps({"text": text, **message}, default=str) + "\n").encode()
        with contextlib.suppress(OSError):  # the runner went away: progress is optional
            while data:  # a pipe may take a long record in parts
                data = data[os.write(fd, data) :]


def _append_result(path: Path, line: dict[str, Any]) -> dict[str, Any] | None:
    """One JSON line onto the results file; on failure (a full disk) the file, its errno and strerror."""
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, default=str) + "\n")
    except OSError as err:
        return {"file": str(path), "errno": err.errno, "error": err.strerror or str(err)}
    return None


# --- The journal: what was collected, what started ------------------------------------------------------
STARTED = "--- smoke check started: "  # on stderr before each check: the runner's start of its last words


def _names(item: pytest.Item) -> dict[str, str]:
    return {
        "id": item.nodeid,
        "name": item.name.removeprefix("test_"),
        "category": Path(str(item.path)).stem.removeprefix("test_").split("_", 1)[-1],
    }


def _journal(config: pytest.Config, record: dict[str, Any]) -> None:
    path = options(config).journal
    if path is not None:
        # A full disk: the results still reach the runner (the pipe).
        with contextlib.suppress(OSError), open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    _journal(session.config, {"event": "collected", "checks": [_names(i) for i in session.items]})


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _journal(item.config, {"event": "started", **_names(item), "t": round(time.time(), 3)})
    # To fd 2 itself (the runner's pytest captures sys.stderr only: --capture=tee-sys): a dying check's own
    # words follow this line in checks.stderr.log.
    with contextlib.suppress(OSError):
        os.write(2, f"\n{STARTED}{item.nodeid}\n".encode())


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
            **_names(item),
            "status": status,
            "duration_s": round(report.duration, 2),
            "setup_s": round(setup_s, 2),
            "started": round(started, 3),  # epoch seconds: the report's timeline
            "ended": round(call.stop, 3),
            "message": "" if status == "passed" else _message(report),
            **(record.as_dict() if record else {}),
            "breakdown": (record or CheckRecord(options(item.config).out)).breakdown(setup_s, call_s),
        }
        results = options(item.config).results
        lost = _append_result(results, line) if results is not None else None
        _progress(item.config, line, record=line, **({"lost": lost} if lost else {}))
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Taken here when the framework is already imported (cheap); otherwise the runner takes it itself.
    framework = framework_ops.name()
    if options(session.config).results is None or framework not in sys.modules:
        return
    from workloads.harness.fingerprint import environment_fingerprint

    try:
        (options(session.config).out / "fingerprint.json").write_text(
            json.dumps(environment_fingerprint(), default=str)
        )
    except Exception as err:  # the runner takes the fingerprint itself then
        _progress(
            session.config,
            {
                "status": "note",
                "category": "suite",
                "name": "fingerprint",
                "duration_s": 0,
                "message": f"fingerprint failed in the check process: {err}",
            },
        )
