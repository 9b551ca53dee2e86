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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gpu_doctor import Diagnosis, diagnose
from gpu_doctor import system as gpu_system
from gpu_doctor.build import gpu_backend, gpu_capabilities
from gpu_doctor.cli import require_gpu_from_env
from gpu_doctor.model import Layer
from smoke_tests import completion, report, timing, warmup, worker
from smoke_tests.baseline import BaselineError, compare, load_baseline
from smoke_tests.settings import DEFAULT_LEVEL, level_settings, seed, settings
from workloads.atomic import atomic_write, make_writable_folder
from workloads.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_THRESHOLD_FAILED

CHECKS_DIR = Path(__file__).resolve().parent / "checks"
CHECK_FILES = sorted(p.name for p in CHECKS_DIR.glob("test_*.py"))


class UsageError(Exception):
    """Bad input: one line to the user, exit 2."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m smoke_tests",
        description=__doc__.splitlines()[0],
        epilog="python -m smoke_tests doctor [--help]: the layered GPU diagnosis alone (make doctor)",
    )
    p.add_argument(
        "--level", default=DEFAULT_LEVEL, help=f"{DEFAULT_LEVEL} (default, ~3 min on 2 CPU cores) or full"
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
        raise UsageError(f"--out {out}: cannot write there ({err.strerror or err})") from None
    return out.resolve()


def _relay(fd: int) -> threading.Thread:
    def pump() -> None:
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            for line in iter(pipe.readline, b""):
                sys.stdout.write(line.decode(errors="replace"))
                sys.stdout.flush()

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


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
    out: Path, args: argparse.Namespace, require_gpu: bool, run_seed: int
) -> tuple[int | None, str]:
    """Run pytest over the check modules in a child; returns (its exit code, -N when a signal killed it, or
    None when the runner stopped it; the note that says why).
    Everything the checks need goes on the child's command line as the plugin's options (--smoke-*)."""
    limits = level_settings(args.level)
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
        f"--smoke-level={args.level}",
        f"--smoke-results={results}",
        f"--smoke-journal={journal}",
        f"--smoke-progress-fd={write_fd}",
        f"--smoke-seed={run_seed}",
        f"--smoke-isolation={args.isolation}",
    ]
    if require_gpu:
        cmd.append("--smoke-require-gpu")
    if args.data:
        cmd.append(f"--smoke-data={args.data.resolve()}")
    if args.select:
        cmd += ["-k", args.select]
    relay = _relay(read_fd)
    with (out / completion.LOG).open("w") as log:
        # Its own process group: Ctrl-C in a terminal reaches this runner only, which then stops the group.
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, pass_fds=(write_fd,), process_group=0
        )
        os.close(write_fd)
        code, note = _wait(proc, limits["suite_timeout_s"])
        stop_process_group(proc)  # whatever a check started and left behind
    relay.join(timeout=5)
    return code, note  # a negative code (killed by a signal) is judged by smoke_tests.completion


# --- signals and the check process ------------------------------------------------------------------------
class StopRequest:
    """SIGINT and SIGTERM are recorded here and acted on where the runner can do it cleanly: the check
    process group is stopped, and the report (marked interrupted) is written all the same."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._record)

    def _record(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
            # os.write: a print here could land inside another print of the main thread (reentrant I/O)
            message = f"\nsmoke_tests: {self.name} received: stopping the checks, writing the report\n"
            os.write(2, message.encode())

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
    proc.wait()


def read_results(out: Path) -> list[dict[str, Any]]:
    """One record per finished check; a last line cut short by a killed check process is left out."""
    path = out / "results.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                records.append(record)
    return records


def fingerprint(out: Path, level: str, require_gpu: bool, run_seed: int) -> dict[str, Any]:
    """The workloads' environment fingerprint (taken in the check process), plus this run's settings."""
    try:
        fp = json.loads((out / "fingerprint.json").read_text())
    except (OSError, ValueError):
        from workloads.harness.fingerprint import environment_fingerprint

        fp = environment_fingerprint()
    fp["smoke_settings"] = {
        "level": level,
        "require_gpu": require_gpu,
        **level_settings(level),
        "seed": run_seed,
    }
    return fp


def build_report(
    out: Path,
    level: str,
    checks: list[dict[str, Any]],
    system: dict[str, Any],
    diagnosis: dict[str, Any],
    baseline: dict[str, Any] | None,
    require_gpu: bool,
    started: float,
    timeline: tuple[float, float] | None = None,
    run_seed: int | None = None,
) -> dict[str, Any]:
    """The report; `timeline`: when the run started and the check process was launched (epoch seconds);
    `run_seed`: the checks' seed (None: the settings')."""
    from smoke_tests import framework_ops

    data: dict[str, Any] = {
        "schema_version": report.SCHEMA_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "level": level,
        "backend": framework_ops.name(),
        "require_gpu": require_gpu,
        "gpu": system,
        "diagnosis": diagnosis,
        "checks": checks,
        "devices": report.devices(system, checks),
        "counts": report.counts(checks),
        "fingerprint": fingerprint(out, level, require_gpu, seed(run_seed)),
        "charts": [],
    }
    chart = report.telemetry_chart(checks, out / "telemetry.png")
    if chart:
        data["charts"].append(chart.name)
    if baseline is not None:
        data["comparison"] = compare(baseline, data, settings()["report"]["baseline_tolerance"])
    data["verdict"] = report.verdict(checks, data.get("comparison"))
    data["duration_s"] = round(time.perf_counter() - started, 1)
    data["time"] = timing.totals(checks)
    if timeline is not None:
        data["timeline"] = timing.suite_timeline(*timeline, time.time(), checks)
    return data


def write_report(out: Path, data: dict[str, Any]) -> None:
    """report.json and report.html, each written whole or not at all (a reader never sees half of one)."""
    text = json.dumps(data, indent=1, default=str)
    atomic_write(out / "report.json", lambda tmp: tmp.write_text(text))
    page = report.render_html(data, out)
    atomic_write(out / "report.html", lambda tmp: tmp.write_text(page))


def probe_gpu() -> Diagnosis:
    """The layers below the framework, before the checks start. Never raises: a probe that fails (a GPU lost
    during the probe) is a broken layer in the diagnosis, reported as a check failure, not a traceback."""
    try:
        return diagnose(ask_framework=False, ask_compute=False)
    except Exception as err:  # diagnose() guards every probe; this is the last line of defence
        layer = Layer("hardware").broken(f"the GPU diagnosis failed: {type(err).__name__}: {err}",
                                          "python -m smoke_tests doctor --json")  # fmt: skip
        return Diagnosis(
            layers=[layer], gpu_found=True, nvml={"available": False, "reason": layer.cause, "gpus": []}
        )


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
    # 1, not 2: TensorFlow's W-level lines carry its reasons ("Cannot dlopen some GPU libraries", "Can't find
    # libdevice directory"); they reach a failing check's message and a dying check's last words.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    args = parse_args(argv)
    STOP.install()
    try:
        level_settings(args.level)
    except ValueError as err:
        print(f"smoke_tests: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    require_gpu = bool(args.require_gpu) or require_gpu_from_env()
    try:
        run_seed = _seed_from_env()
        baseline = load_baseline(args.baseline) if args.baseline else None
        if args.data and not args.data.is_dir():
            raise UsageError(f"--data {args.data}: no such folder")
        out = _out_dir(args.out)
    except (UsageError, BaselineError) as err:
        print(f"smoke_tests: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    found = probe_gpu()
    notes = []
    # Decided once, here: the backend of every check and workload (the check process inherits it).
    backend, why = gpu_backend(
        os.environ.get("KERAS_BACKEND"), gpu_system.current().metadata, gpu_capabilities(found.to_dict())
    )
    if why:
        os.environ["KERAS_BACKEND"] = backend
        notes.append(why)
        found = probe_gpu()
    system, diagnosis = found.nvml, found.to_dict()
    print(f"smoke tests ({args.level}) -> {out}")
    if found.staged_root:
        print(
            f"  !! staged root {found.staged_root} (test hook GPU_DOCTOR_ROOT): not this machine's hardware"
        )
    if note := _gpu_note(found):
        print(f"  note: {note}")
    for note in notes:
        print(f"  note: {note}")
    os.environ.update(warmup.cuda_cache_env(os.environ))  # the driver's compiled kernels outlive the run
    warm = (
        None
        if STOP.signum is not None
        else warmup.warm_up(diagnosis, check_env(args), lambda: STOP.signum is not None)
    )
    if warm and not warm.get("interrupted"):
        done = f"cached in {warm['cache']}" if warm.get("cache") else f"failed: {warm.get('error')}"
        notes.append(f"{warm['what']}: {warm.get('seconds')} s before the checks (untimed), {done}")
    launched = time.time()
    if STOP.signum is None:
        code, note = run_checks(out, args, require_gpu, run_seed)
    else:
        code, note = None, STOP.note(started=False)
    interrupted = STOP.name if code is None and STOP.signum is not None else ""
    checks = read_results(out)
    with contextlib.suppress(OSError, ValueError):  # what the check process saw, when it got that far
        system = json.loads((out / "system.json").read_text())
    with contextlib.suppress(OSError, ValueError):
        diagnosis = json.loads((out / "diagnosis.json").read_text())
    # A run that did not finish (the check process died, was stopped, or left checks unrun) is never a pass.
    incomplete = completion.unfinished(out, checks, code, note)
    if incomplete:
        checks += completion.records(incomplete, interrupted=bool(interrupted))
    data = build_report(out, args.level, checks, system, diagnosis, baseline, require_gpu, started,
                        (started_epoch, launched), run_seed)  # fmt: skip
    if incomplete:
        data["incomplete"] = incomplete
    data["notes"], data["warmup"] = notes, warm
    if interrupted:
        data["interrupted"] = interrupted
        data["verdict"] = "INTERRUPTED"
    write_report(out, data)
    print(report.summary_text(data, out))
    if interrupted:
        return 128 + STOP.signum
    # pytest: 2 interrupted (a check module did not import), 3 internal error, 4 usage, 5 no check selected.
    if code in (2, 3, 4, 5) and not incomplete:
        print(f"smoke_tests: error: pytest could not run the checks (exit {code}); see {out / 'pytest.log'}",
              file=sys.stderr)  # fmt: skip
        return EXIT_BAD_INPUT
    return EXIT_OK if data["verdict"] == "PASSED" else EXIT_THRESHOLD_FAILED
