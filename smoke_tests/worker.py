"""The workload worker: one long-lived process that imports the framework once and runs the workloads in turn.

The smoke test used to run each workload as `python -m workloads ...` in a fresh interpreter, paying the
framework's import (TensorFlow about 11 s on 2 CPU cores) every time. The worker pays it once, while the
checks before the workloads run, then runs each workload through the same CLI (`workloads.cli.main(argv)`)
in its own process, as benchmarks/calibrate.py does: Keras's session cleared before each run, the run
seeded by the CLI's dispatch, its output (Python's and the C++ libraries') in the run's own log file.

What the separate processes gave is kept: the worker is not the check process. When a workload crashes the
worker (a segfault in a CUDA library, an abort, an exit), the check says so and the next workload gets a
fresh worker; when one hangs past its limit, the worker is killed and replaced the same way. A run that
ends with an unhandled exception or Ctrl-C also retires its worker, so no half-torn-down state is reused.

The worker dies with the process that started it: Linux's parent-death signal (SIGTERM: a running workload
ends like Ctrl-C, its result written) and a watchdog thread that exits when the parent is gone (after a
running workload, at most GRACE_S), cover a parent killed by any signal; it shares the parent's
process group, so a Ctrl-C at the terminal or a signal sent to the group reaches it directly.

Protocol: JSON lines. Requests on the worker's stdin: {"argv": [...], "log": path} or {"exit": true}.
Replies on a pipe of their own (fd passed as argument), never on stdout, which the runs write into:
{"ready": true, "startup_s": s} once, then one {"exit": code, "seconds": s, "retire": bool} per run.

    python -m smoke_tests.worker REPLY_FD PARENT_PID ENTRY WORKLOAD...   (WorkloadWorker starts it)

ENTRY is `module:function`, `workloads.cli:main`; the tests give a stand-in that crashes or hangs on demand.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_doctor.exit_codes import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK
from smoke_tests.lifeline import die_with_parent

# How the smoke test runs the workloads: in this worker (default), or each in a fresh interpreter.
ISOLATIONS = ("worker", "subprocess")
ENTRY = "workloads.cli:main"  # what a run calls with the CLI's arguments
# The GPU is shared by the check process and the worker (both run at once while the worker starts): each
# takes memory as it needs it rather than all of it up front (TensorFlow's default) or 75% (JAX's). A
# user's own setting wins.
GPU_MEMORY_ENV = {"TF_FORCE_GPU_ALLOW_GROWTH": "true", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


def gpu_memory_env(environ: Mapping[str, str]) -> dict[str, str]:
    """What the check process and the worker add to their environment: GPU_MEMORY_ENV, where `environ` has
    no setting of its own."""
    return {k: v for k, v in GPU_MEMORY_ENV.items() if k not in environ}


# --- The worker process -------------------------------------------------------------------------------------
_busy = threading.Event()  # a workload is running in this worker
# What a workload interrupted by SIGTERM gets to write its result before its worker goes (the runner's
# SIGKILL follows its SIGTERM after 10 s).
GRACE_S = 8.0
# Python's own exit status when an exception ends the interpreter: what `python -m workloads` would give.
PYTHON_UNCAUGHT_EXIT = 1


def _die_with_parent(parent: int) -> None:
    """Exit when `parent` is gone, whatever killed it (no worker outlives the smoke test). A running workload
    gets SIGTERM first, which ends it like Ctrl-C, with its result written ("interrupted")."""
    die_with_parent(parent, signal.SIGTERM)  # Linux; the watchdog below covers the rest

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        deadline = time.monotonic() + GRACE_S
        while _busy.is_set() and time.monotonic() < deadline:
            time.sleep(0.1)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


@contextlib.contextmanager
def _output_to(log: Path):
    """fds 1 and 2 (Python's prints, Keras's progress, the C++ libraries' logs) into `log`, then back."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("ab") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def _entry(entry: str) -> Callable[[list[str]], int]:
    module, function = entry.split(":")
    return getattr(importlib.import_module(module), function)


def _warm_up(entry: str, workloads: list[str]) -> None:
    """Import the framework, Keras and the workloads' modules (sklearn, matplotlib): start-up, paid once."""
    if entry != ENTRY:  # a stand-in (tests)
        _entry(entry)
        return
    from workloads.training.backend import select_backend

    select_backend(None)  # $KERAS_BACKEND, as the check process uses
    import keras

    from workloads import cli
    from workloads.harness import fingerprint, summary  # noqa: F401
    from workloads.training import recorder  # noqa: F401

    for name in workloads:
        cli._workload_main(name)
    keras.ops.convert_to_numpy(keras.ops.ones((1,)))  # the framework's device and runtime set up


def _run_one(main: Callable[[list[str]], int], argv: list[str], log: Path) -> tuple[int, bool]:
    """One workload through its CLI; (exit code, retire: do not reuse this process)."""
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()
    with _output_to(log):
        _busy.set()
        try:
            return main(argv), False
        except SystemExit as exc:  # argparse's usage errors
            return (exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT), False
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED, True
        except BaseException:  # what would end `python -m workloads` with a traceback: exit 1, fresh worker
            traceback.print_exc()
            return PYTHON_UNCAUGHT_EXIT, True
        finally:
            _busy.clear()


def serve(reply_fd: int, parent: int, entry: str, workloads: list[str]) -> int:
    _die_with_parent(parent)
    started = time.perf_counter()

    def reply(message: dict[str, Any]) -> None:
        os.write(reply_fd, (json.dumps(message) + "\n").encode())

    try:
        _warm_up(entry, workloads)
        main = _entry(entry)
        reply({"ready": True, "startup_s": round(time.perf_counter() - started, 3), "pid": os.getpid()})
        for line in sys.stdin:
            request = json.loads(line)
            if request.get("exit"):
                break
            t0 = time.perf_counter()
            code, retire = _run_one(main, request["argv"], Path(request["log"]))
            reply({"exit": code, "seconds": round(time.perf_counter() - t0, 3), "retire": retire})
            if retire:
                break
    except KeyboardInterrupt:  # Ctrl-C at the terminal reaches the whole process group
        return EXIT_INTERRUPTED
    return EXIT_OK


# --- The check process's side -------------------------------------------------------------------------------
@dataclass
class Outcome:
    """How one workload run ended, as the check judges it."""

    exit: int | None  # the CLI's exit code; None when the worker died or the run was stopped
    wall_s: float  # from the request to the reply (or the worker's death), waiting for the worker included
    startup_s: float  # of that, waiting for a worker to be ready (its framework import)
    error: str = ""  # why there is no exit code, in one line


class WorkerDied(Exception):
    """The worker exited or was killed before it replied."""


class WorkloadWorker:
    """Starts the worker, sends it workloads one at a time, and replaces it when it dies or hangs."""

    def __init__(self, log: Path, workloads: list[str], entry: str = ENTRY) -> None:
        self.log = log  # the worker's own output outside any run (start-up errors)
        self.workloads = workloads
        self.entry = entry
        self.proc: subprocess.Popen[bytes] | None = None
        self.reply_fd: int | None = None
        self.buffer = b""
        self.ready = False
        self.starts = 0
        self.startup_s: list[float] = []  # each worker's own start-up, as it measured it

    # lifecycle
    def start(self) -> None:
        """Start a worker in the background (it imports the framework while other checks run)."""
        if self.proc is not None:
            return
        read_fd, write_fd = os.pipe()
        env = {**os.environ, **gpu_memory_env(os.environ)}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            argv = [str(write_fd), str(os.getpid()), self.entry, *self.workloads]
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "smoke_tests.worker", *argv],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                pass_fds=(write_fd,),
            )
        os.close(write_fd)
        self.reply_fd, self.buffer, self.ready = read_fd, b"", False
        self.starts += 1

    def stop(self) -> None:
        """Ask the worker to exit; kill it if it does not within a few seconds."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            proc.stdin.write(b'{"exit": true}\n')
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._close_reply()

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            with contextlib.suppress(OSError):
                proc.stdin.close()
        self._close_reply()

    def interrupt(self) -> None:
        """Stop the worker as Ctrl-C would: SIGTERM ends a running workload with its result written
        ("interrupted"), then the worker, its input closed, exits; killed if it has not within GRACE_S."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._close_reply()

    def _close_reply(self) -> None:
        if self.reply_fd is not None:
            os.close(self.reply_fd)
            self.reply_fd = None

    # messages
    def _death(self) -> str:
        assert self.proc is not None
        code = self.proc.wait()
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"the worker was killed by signal {-code} ({signal.Signals(-code).name})"
            return f"the worker was killed by signal {-code}"
        return f"the worker exited with status {code}"

    def _read(self, deadline: float) -> dict[str, Any]:
        """The worker's next reply; TimeoutError at the deadline, WorkerDied when its pipe closes."""
        assert self.reply_fd is not None
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            readable, _, _ = select.select([self.reply_fd], [], [], min(left, 1.0))
            if not readable:
                continue
            chunk = os.read(self.reply_fd, 65536)
            if not chunk:
                raise WorkerDied(self._death())
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def run(self, argv: list[str], log: Path, timeout: float) -> Outcome:
        """Run one workload (`python -m workloads ARGV`) in the worker, its output into `log`."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        startup = 0.0
        try:
            if self.proc is None:
                self.start()
            if not self.ready:
                self.startup_s.append(self._read(deadline)["startup_s"])
                self.ready = True
                startup = time.monotonic() - t0
            assert self.proc is not None and self.proc.stdin is not None
            try:
                self.proc.stdin.write((json.dumps({"argv": argv, "log": str(log)}) + "\n").encode())
                self.proc.stdin.flush()
            except OSError:
                raise WorkerDied(self._death()) from None
            reply = self._read(deadline)
        except WorkerDied as died:
            where = "while it ran this workload" if self.ready else f"while starting (see {self.log.name})"
            self.kill()
            return Outcome(None, time.monotonic() - t0, startup, f"{died} {where}")
        except TimeoutError:
            where = " while the worker started" if not self.ready else ""
            self.kill()
            return Outcome(None, time.monotonic() - t0, startup, f"stopped after {timeout:.0f} s{where}")
        except BaseException:  # pytest-timeout's or Ctrl-C's exception: no worker left running a workload
            self.interrupt()
            raise
        if reply.get("retire"):
            self.stop()
        return Outcome(int(reply["exit"]), time.monotonic() - t0, startup)


if __name__ == "__main__":
    sys.exit(serve(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]))
