"""`python -m smoke_tests`: run the smoke checks with pytest in a child process, then write the report.
`python -m smoke_tests doctor`: only the layered GPU diagnosis (gpu_doctor), in seconds.

The checks run in a child so that a crash (a segfault in a CUDA library) or a hang past the suite's time
limit still leaves a report. So does SIGINT (Ctrl-C) or SIGTERM: the child's process group is stopped and the
report, marked interrupted, lists what ran. Exit codes: 0 all passed, 1 a check failed, 2 the suite could
not run, 130 / 143 interrupted by SIGINT / SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gpu_doctor import Diagnosis, diagnose
from gpu_doctor import system as gpu_system
from gpu_doctor.backends import keep_tensorflow_reasons
from gpu_doctor.build import gpu_backend, gpu_capabilities
from gpu_doctor.cli import OneLineParser, require_gpu_from_env
from gpu_doctor.exit_codes import EXIT_BAD_INPUT, EXIT_NO_SPACE, EXIT_OK, EXIT_THRESHOLD_FAILED
from gpu_doctor.model import Layer
from gpu_doctor.safe_read import read_bytes
from smoke_tests import completion, lifeline, report, timing, warmup, worker
from smoke_tests.baseline import compare, load_baseline
from smoke_tests.settings import (
    DEFAULT_LEVEL,
    Level,
    SettingsError,
    level_names,
    resolve_level,
    seed,
    settings,
)
from smoke_tests.smoke_report import SmokeReport
from workloads.atomic import atomic_write, make_writable_folder
from workloads.errors import NoSpaceError, WorkloadError, is_no_space
from workloads.locks import lock_folder

CHECKS_DIR = Path(__file__).resolve().parent / "checks"
MAX_READ_BACK_BYTES = 256 << 20  # what the check process writes (every telemetry sample): a few MB
CHECK_FILES = sorted(p.name for p in CHECKS_DIR.glob("test_*.py"))
DIAGNOSIS_FILE, SYSTEM_FILE = "diagnosis.json", "system.json"  # the runner's GPU diagnosis, for the checks


class UsageError(Exception):
    """Bad input: one line to the user, exit 2."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    try:
        levels: list[str] | None = level_names()
    except SettingsError:  # main says why, in one line, when it resolves the level
        levels = None
    p = OneLineParser(
        prog="python -m smoke_tests",
        description=__doc__.splitlines()[0],
        epilog="python -m smoke_tests doctor [--help]: the layered GPU diagnosis alone (make doctor)",
    )
    p.add_argument(
        "--level",
        default=DEFAULT_LEVEL,
        choices=levels,
        help=f"{DEFAULT_LEVEL} (default, ~3 min on 2 CPU cores), full, or a level of $SMOKE_SETTINGS",
    )
    p.add_argument("--out", type=Path, help="report folder (default reports/smoke/<timestamp>/)")
    p.add_argument("--baseline", type=Path, help="an earlier report.json of this machine to compare with")
    p.add_argument(
        "--data", type=Path, help="MNIST IDX folder for the workloads (default: Debian Fashion-MNIST)"
    )
    p.add_argument(
        "--require-gpu",
        action="store_true",
        default=None,
        help="fail when no NVIDIA GPU is found (also REQUIRE_GPU=1)",
    )
    p.add_argument("-k", dest="select", help="only checks matching this pytest -k expression")
    p.add_argument(
        "--isolation",
        choices=worker.ISOLATIONS,
        default=os.environ.get("SMOKE_ISOLATION") or worker.ISOLATIONS[0],
        help="how the workloads run: in one worker process that imports the framework once (default), or "
        "each in a fresh interpreter (subprocess: the slower way before, kept for comparison)",
    )
    return p.parse_args(argv)


def _seed_from_env() -> int:
    """The checks' seed: $SMOKE_SEED overrides the settings' (read here only; the checks get --smoke-seed)."""
    text = os.environ.get("SMOKE_SEED", "")
    try:
        return seed(int(text) if text else None)
    except ValueError:
        raise UsageError(f"SMOKE_SEED={text[:40]!r}: not an integer") from None


def _out_dir(arg: Path | None) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = arg or Path(settings()["report"]["root"]) / stamp
    try:
        make_writable_folder(out)
    except OSError as err:
        if is_no_space(err):
            raise NoSpaceError(f"--out {out}: cannot write there ({err.strerror})") from None
        raise UsageError(f"--out {out}: cannot write there ({err.strerror or err})") from None
    lock_folder(out, "--out")  # two runs into one folder would mix their reports: the second is refused
    return out.resolve()


@dataclass
class Relayed:
    """What the check process sent through its progress pipe: each finished check's record (also appended to
    results.jsonl, which a full disk can cut short) and the files it could not write."""

    records: list[dict[str, Any]] = field(default_factory=list)
    lost: list[dict[str, Any]] = field(default_factory=list)


def _relay(fd: int, relayed: Relayed) -> threading.Thread:
    """Print the check process's progress lines as they come, and keep what they carry (plugin.py)."""

    def pump() -> None:
        with os.fdopen(fd, "rb") as pipe:
            for raw in iter(pipe.readline, b""):
                try:
                    message = json.loads(raw)
                except ValueError:  # the last line of a killed check process, cut short
                    continue
                if not isinstance(message, dict):
                    continue
                if isinstance(message.get("record"), dict):
                    relayed.records.append(message["record"])
                if isinstance(message.get("lost"), dict):
                    relayed.lost.append(message["lost"])
                _say(str(message.get("text", "")), end="")

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def _log_pump(fd: int, path: Path, relayed: Relayed) -> threading.Thread:
    """The check process's output into pytest.log, through this runner rather than straight into the file: a
    full disk then costs the log (said in `relayed.lost`), never the checks (pytest ends with an internal
    error when it cannot write its output)."""

    def pump() -> None:
        log: Any = None
        try:
            log = path.open("wb", buffering=0)
        except OSError as err:
            relayed.lost.append(_lost(err))
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            for chunk in iter(lambda: pipe.read(1 << 16), b""):
                if log is None:
                    continue  # read on: the check process must never block on its output
                try:
                    log.write(chunk)
                except OSError as err:
                    relayed.lost.append(_lost(OSError(err.errno, err.strerror, str(path))))
                    with contextlib.suppress(OSError):
                        log.close()
                    log = None
        if log is not None:
            with contextlib.suppress(OSError):
                log.close()

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def _say(text: str, file: Any = None, end: str = "\n") -> None:
    """Print to the terminal, which may be gone (SIGHUP: a closed SSH session): the report is on disk."""
    with contextlib.suppress(OSError, ValueError):
        print(text, file=file or sys.stdout, end=end, flush=True)


def check_env(args: argparse.Namespace) -> dict[str, str]:
    """The environment of the check process (and of the warm-up before it)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(CHECKS_DIR.parent.parent), os.environ.get("PYTHONPATH")])
        ),
    }
    if args.isolation == "worker":
        env.update(worker.gpu_memory_env(os.environ))
    return env


def run_checks(
    out: Path,
    args: argparse.Namespace,
    level: Level,
    require_gpu: bool,
    run_seed: int,
    relayed: Relayed | None = None,
    diagnosis_file: Path | None = None,
) -> tuple[int | None, str]:
    """Run pytest over the check modules in a child; returns (its exit code, -N when a signal killed it, or
    None when the runner stopped it; the note that says why); the checks' records arrive in `relayed`.
    Everything the checks need goes on the child's command line as the plugin's options (--smoke-*):
    the level by name, and the runner's GPU diagnosis as `diagnosis_file` (None: the checks probe)."""
    limits = level.settings
    results, journal = out / "results.jsonl", out / completion.JOURNAL
    results.unlink(missing_ok=True)
    journal.unlink(missing_ok=True)
    read_fd, write_fd = os.pipe()
    env = check_env(args)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *(str(CHECKS_DIR / f) for f in CHECK_FILES),
        "-p",
        "no:cacheprovider",
        "-p",
        "smoke_tests.plugin",
        "--rootdir",
        str(CHECKS_DIR),
        "-o",
        "addopts=",
        "-o",
        "testpaths=",
        f"--junitxml={out / 'junit.xml'}",
        "-o",
        "junit_family=xunit2",
        f"--timeout={limits['check_timeout_s']}",
        "-q",
        "--no-header",
        "-rN",
        "--capture=tee-sys",  # native code writes to fd 2 uncaptured: a dying check's words reach pytest.log
        f"--smoke-out={out}",
        f"--smoke-level={level.name}",
        f"--smoke-results={results}",
        f"--smoke-journal={journal}",
        f"--smoke-progress-fd={write_fd}",
        f"--smoke-seed={run_seed}",
        f"--smoke-isolation={args.isolation}",
    ]
    if require_gpu:
        cmd.append("--smoke-require-gpu")
    if diagnosis_file is not None:
        cmd.append(f"--smoke-diagnosis={diagnosis_file}")
    if args.data:
        cmd.append(f"--smoke-data={args.data.resolve()}")
    if args.select:
        cmd += ["-k", args.select]
    relayed = relayed if relayed is not None else Relayed()
    relay = _relay(read_fd, relayed)
    log_read, log_write = os.pipe()
    log = _log_pump(log_read, out / completion.LOG, relayed)
    # Its own process group: Ctrl-C in a terminal reaches this runner only, which then stops the group.
    # Through the lifeline: it dies with this runner however the runner ends (SIGKILL, a closed terminal).
    proc = subprocess.Popen(lifeline.command(cmd), stdout=log_write, stderr=subprocess.STDOUT, env=env,
                            pass_fds=(write_fd,), process_group=0)  # fmt: skip
    os.close(write_fd)
    os.close(log_write)
    code, note = _wait(proc, limits["suite_timeout_s"])
    stop_process_group(proc)  # whatever a check started and left behind
    relay.join(timeout=5)
    log.join(timeout=5)
    return code, note  # a negative code (killed by a signal) is judged by smoke_tests.completion


# --- signals and the check process ------------------------------------------------------------------------
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C; kill, docker stop; a closed terminal


class Stopped(BaseException):
    """Raised in the main thread by a stop signal while the runner prepares (settings, the GPU probe), so
    that nothing it is doing there, a read that blocks included, keeps it from stopping."""


class StopRequest:
    """SIGINT, SIGTERM and SIGHUP are recorded here. Before the checks start they stop the runner at once
    (Stopped); from then on the runner acts on them where it can do it cleanly: the check process group is
    stopped, and the report (marked interrupted) is written all the same."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.deferred = False

    def install(self) -> None:
        self.signum, self.deferred = None, False
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._record)

    def defer(self) -> None:
        """From now on a signal is only recorded: the runner's own loop looks for it (run_checks' _wait)."""
        self.deferred = True

    def _record(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
            # os.write: a print here could land inside another print of the main thread (reentrant I/O)
            message = f"\nsmoke_tests: {self.name} received: stopping the checks, writing the report\n"
            with contextlib.suppress(OSError):  # no terminal any more (SIGHUP)
                os.write(2, message.encode())
            if not self.deferred:
                raise Stopped

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def note(self, started: bool) -> str:
        if not started:
            return f"interrupted by {self.name} before the checks started"
        return f"interrupted by {self.name}: the checks were stopped; those that finished are reported"


STOP = StopRequest()


def _wait(proc: subprocess.Popen, limit_s: float) -> tuple[int | None, str]:
    """The check process's exit code; None with a note when it was stopped (a signal, the time limit)."""
    deadline = time.monotonic() + limit_s
    while True:
        try:
            return proc.wait(timeout=0.25), ""
        except subprocess.TimeoutExpired:
            pass
        if STOP.signum is not None:
            stop_process_group(proc)
            return None, STOP.note(started=True)
        if time.monotonic() > deadline:
            stop_process_group(proc)
            return None, f"the suite passed its {limit_s} s limit and was stopped"


def stop_process_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM to the check process's group (pytest and the workloads it runs; a workload keeps its result
    on SIGTERM), then SIGKILL to whatever is left after `grace_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            proc.poll()  # reaps the leader; the others are reaped by whoever inherits them
            try:
                os.killpg(proc.pid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.1)
    with contextlib.suppress(subprocess.TimeoutExpired):  # a process stuck in the kernel (a wedged driver)
        proc.wait(timeout=1)  # ignores even SIGKILL: the report is written without waiting for it


def read_results(out: Path) -> list[dict[str, Any]]:
    """One record per finished check; a last line cut short by a killed check process is left out."""
    path = out / "results.jsonl"
    if not path.is_file():
        return []
    records = []
    try:
        text = _read_back(path).decode(errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                records.append(record)
    return records


def _read_back(path: Path) -> bytes:
    """A file the check process wrote into the report folder, read so that nothing found there instead (a
    FIFO, a device) can hold the runner after a signal (gpu_doctor.safe_read)."""
    return read_bytes(path, max_bytes=MAX_READ_BACK_BYTES, timeout_s=10)


def fingerprint(out: Path, level: Level, require_gpu: bool, run_seed: int) -> dict[str, Any]:
    """The workloads' environment fingerprint (taken in the check process), plus this run's settings."""
    try:
        fp = json.loads(_read_back(out / "fingerprint.json"))
    except (OSError, ValueError):
        from workloads.harness.fingerprint import environment_fingerprint

        fp = environment_fingerprint()
    fp["smoke_settings"] = {
        "level": level.name,
        "require_gpu": require_gpu,
        **level.settings,
        "seed": run_seed,
    }
    return fp


def build_report(
    out: Path,
    level: Level,
    checks: list[dict[str, Any]],
    system: dict[str, Any],
    diagnosis: dict[str, Any],
    baseline: dict[str, Any] | None,
    require_gpu: bool,
    started: float,
    timeline: tuple[float, float] | None = None,
    run_seed: int | None = None,
    not_written: list[dict[str, Any]] | None = None,
) -> SmokeReport:
    """The report; `timeline`: when the run started and the check process was launched (epoch seconds);
    `run_seed`: the checks' seed (None: the settings'); `not_written`: files of the run a full disk cost."""
    from smoke_tests import framework_ops

    built = SmokeReport(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        level=level.name,
        backend=framework_ops.name(),
        require_gpu=require_gpu,
        gpu=system,
        diagnosis=diagnosis,
        checks=checks,
        devices=report.devices(system, checks),
        counts=report.counts(checks),
        fingerprint=fingerprint(out, level, require_gpu, seed(run_seed)),
        not_written=list(not_written or []),
    )
    try:
        chart = report.telemetry_chart(checks, out / "telemetry.png")
    except OSError as err:
        chart = None
        built.not_written.append(_lost(err))
    if chart:
        built.charts.append(chart.name)
    if baseline is not None:
        built.comparison = compare(baseline, built.to_json(), settings()["report"]["baseline_tolerance"])
    built.verdict = report.verdict(checks, built.comparison)
    built.duration_s = round(time.perf_counter() - started, 1)
    built.time = timing.totals(checks)
    if timeline is not None:
        built.timeline = timing.suite_timeline(*timeline, time.time(), checks)
    return built


def write_report(out: Path, data: dict[str, Any]) -> list[dict[str, Any]]:  # data: SmokeReport.to_json()
    """report.json (the smaller, first), then report.html, each written whole or not at all (a reader never
    sees half of one); what could not be written (a full disk), as `_lost` entries."""
    lost = []
    text = json.dumps(data, indent=1, default=str)
    try:
        atomic_write(out / "report.json", lambda tmp: tmp.write_text(text))
    except OSError as err:
        lost.append(_lost(err))
    page = report.render_html(data, out)
    try:
        atomic_write(out / "report.html", lambda tmp: tmp.write_text(page))
    except OSError as err:
        lost.append(_lost(err))
    return lost


def _lost(err: OSError) -> dict[str, Any]:
    """A file that could not be written, for the report and the last line (plugin.py sends the same)."""
    return {"file": str(err.filename), "errno": err.errno, "error": err.strerror or str(err)}


def _lost_exit(out: Path, lost: list[dict[str, Any]]) -> int:
    """The one line about the files a run could not write, and its exit code (4 for a full disk)."""
    full = any(is_no_space(OSError(entry.get("errno"), "")) for entry in lost)
    names = ", ".join(dict.fromkeys(os.path.relpath(str(entry["file"]), out) for entry in lost))
    why = "out of space" if full else lost[0]["error"]
    _say(f"smoke_tests: error: {why}: could not write {names} in {out} (the summary above is this run's; "
         "free some space and run again)", file=sys.stderr)  # fmt: skip
    return EXIT_NO_SPACE if full else EXIT_BAD_INPUT


def probe_gpu() -> Diagnosis:
    """The layers below the framework, before the checks start. Never raises: a probe that fails (a GPU lost
    during the probe) is a broken layer in the diagnosis, reported as a check failure, not a traceback."""
    try:
        return diagnose(ask_framework=False, ask_compute=False)
    except Exception as err:  # diagnose() guards every probe; this is the last line of defence
        return _failed_probe(f"the GPU diagnosis failed: {type(err).__name__}: {err}")


def _failed_probe(cause: str) -> Diagnosis:
    layer = Layer("hardware").broken(cause, "python -m smoke_tests doctor --json")
    return Diagnosis(layers=[layer], gpu_found=True, nvml={"available": False, "reason": cause, "gpus": []})


def probe_gpu_in_background() -> Diagnosis:
    """probe_gpu in a helper thread, the main thread waiting in short steps: a wedged driver can hold a probe
    inside a C call that no signal interrupts, and Ctrl-C, SIGTERM or SIGHUP must still stop the run."""
    found: list[Diagnosis] = []
    prober = threading.Thread(target=lambda: found.append(probe_gpu()), name="gpu-probe", daemon=True)
    prober.start()
    while prober.is_alive():
        prober.join(0.1)
    return found[0] if found else _failed_probe("the GPU diagnosis ended without an answer")


def hand_over_diagnosis(out: Path, found: Diagnosis) -> Path | None:
    """The runner's GPU diagnosis for its check process, which reads it instead of probing a second time:
    diagnosis.json (and NVML's picture, system.json: the multi-GPU checks read it) in the report folder.
    None when it could not be written (a full disk): the check process then probes for itself."""
    path = out / DIAGNOSIS_FILE
    try:
        atomic_write(out / SYSTEM_FILE, lambda tmp: tmp.write_text(json.dumps(found.nvml, default=str)))
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(found.to_dict(), default=str)))
    except OSError:
        return None
    return path


def _gpu_note(found: Diagnosis) -> str | None:
    if not found.gpu_found:
        return f"no NVIDIA GPU found ({found.no_gpu_reason}); running on the CPU"
    broken = found.first_broken
    if broken is not None:
        return f"GPU diagnosis: BROKEN at the {broken.title} layer: {broken.cause} (run: {broken.remedy})"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["doctor"]:
        from gpu_doctor.cli import main as doctor

        return doctor(argv[1:], prog="python -m smoke_tests doctor")
    started, started_epoch = time.perf_counter(), time.time()
    keep_tensorflow_reasons()  # its W-level lines reach a failing check's message and a dying check's words
    args = parse_args(argv)
    out: Path | None = None
    require_gpu = bool(args.require_gpu) or require_gpu_from_env()
    system: dict[str, Any] = {"available": False, "reason": "the GPU probe was interrupted", "gpus": []}
    diagnosis: dict[str, Any] = {}
    handed: Path | None = None
    notes: list[str] = []
    try:
        STOP.install()  # before the checks start, a stop signal ends the runner at once (Stopped)
        try:
            level = resolve_level(args.level)  # decided once; the settings file, checked (a ValueError)
            if args.isolation not in worker.ISOLATIONS:  # argparse checks only a value given as --isolation
                choices = ", ".join(worker.ISOLATIONS)
                raise UsageError(f"SMOKE_ISOLATION={args.isolation[:40]!r}: not one of {choices}")
            run_seed = _seed_from_env()
            baseline = load_baseline(args.baseline) if args.baseline else None
            if args.data and not args.data.is_dir():
                raise UsageError(f"--data {args.data}: no such folder")
            out = _out_dir(args.out)
        except (ValueError, UsageError, WorkloadError) as err:
            _say(f"smoke_tests: error: {err}", file=sys.stderr)
            return getattr(err, "exit_code", EXIT_BAD_INPUT)
        found = probe_gpu_in_background()
        # Decided once, here: the backend of every check and workload (the check process inherits it).
        backend, why = gpu_backend(
            os.environ.get("KERAS_BACKEND"), gpu_system.current().metadata, gpu_capabilities(found.to_dict())
        )
        if why:
            os.environ["KERAS_BACKEND"] = backend
            notes.append(why)
            found = probe_gpu_in_background()
        system, diagnosis = found.nvml, found.to_dict()
        handed = hand_over_diagnosis(out, found)
        _say(f"smoke tests ({level.name}) -> {out}")
        if found.staged_root:
            hook = "(test hook GPU_DOCTOR_ROOT): not this machine's hardware"
            _say(f"  !! staged root {found.staged_root} {hook}")
        if note := _gpu_note(found):
            _say(f"  note: {note}")
        for note in notes:
            _say(f"  note: {note}")
        STOP.defer()
    except Stopped:
        STOP.defer()
        if out is None:  # no report folder yet: nothing to write
            _say(
                f"smoke_tests: interrupted by {STOP.name} before the report folder was made", file=sys.stderr
            )
            return 128 + (STOP.signum or 0)
    os.environ.update(warmup.cuda_cache_env(os.environ))  # the driver's compiled kernels outlive the run
    warm = None
    if STOP.signum is None:
        with contextlib.suppress(OSError):  # its progress lines to a terminal that is gone (SIGHUP)
            warm = warmup.warm_up(diagnosis, check_env(args), lambda: STOP.signum is not None)
    if warm and not warm.get("interrupted"):
        done = f"cached in {warm['cache']}" if warm.get("cache") else f"failed: {warm.get('error')}"
        notes.append(f"{warm['what']}: {warm.get('seconds')} s before the checks (untimed), {done}")
    launched = time.time()
    relayed = Relayed()
    if STOP.signum is None:
        code, note = run_checks(out, args, level, require_gpu, run_seed, relayed, handed)
    else:
        code, note = None, STOP.note(started=False)
    interrupted = STOP.name if code is None and STOP.signum is not None else ""
    checks = max(relayed.records, read_results(out), key=len)  # the pipe's, unless a full disk cut the file
    # What the check process judged by: the runner's own diagnosis, handed over, unless the checks probed for
    # themselves (the runner could not write it: a full disk): then what they saw, if they got that far.
    with contextlib.suppress(OSError, ValueError):
        system = json.loads(_read_back(out / SYSTEM_FILE))
    with contextlib.suppress(OSError, ValueError):
        diagnosis = json.loads(_read_back(out / DIAGNOSIS_FILE))
    # A run that did not finish (the check process died, was stopped, or left checks unrun) is never a pass.
    incomplete = completion.unfinished(out, checks, code, note)
    if incomplete:
        checks += completion.records(incomplete, interrupted=bool(interrupted))
    built = build_report(out, level, checks, system, diagnosis, baseline, require_gpu, started,
                        (started_epoch, launched), run_seed, relayed.lost)  # fmt: skip
    built.incomplete, built.notes, built.warmup = incomplete, notes, warm
    if interrupted:
        built.interrupted, built.verdict = interrupted, "INTERRUPTED"
    data = built.to_json()  # what report.json holds, and what report.py renders
    lost = [*data["not_written"], *write_report(out, data)]
    _say(report.summary_text(data, out))
    if lost:
        if any(entry["file"] == str(out / "report.json") for entry in lost):
            _say(report.figures_text(data))  # report.json did not fit: every figure goes to the terminal
        return _lost_exit(out, lost)
    if interrupted:
        return 128 + (STOP.signum or 0)
    # pytest: 2 interrupted (a check module did not import), 3 internal error, 4 usage, 5 no check selected.
    if code in (2, 3, 4, 5) and not incomplete:
        _say(f"smoke_tests: error: pytest could not run the checks (exit {code}); see {out / 'pytest.log'}",
             file=sys.stderr)  # fmt: skip
        return EXIT_BAD_INPUT
    return EXIT_OK if data["verdict"] == "PASSED" else EXIT_THRESHOLD_FAILED
