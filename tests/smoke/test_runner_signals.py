"""`python -m smoke_tests` stopped by SIGINT (Ctrl-C), SIGTERM (docker stop, systemctl stop, kill) or SIGHUP
(a closed terminal): the report is still written, marked interrupted, with the checks that finished; no
process is left behind (the pytest child and the workloads it runs are stopped as a group), not even when
the runner itself is killed with SIGKILL (they die with their parent)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.terminal import hang_up_when

pytestmark = pytest.mark.slow
SEED = int(os.environ.get("KW_SIGNAL_SEED") or time.time())  # printed in every failure: rerun with it
SIGNALS = [signal.SIGINT, signal.SIGTERM]


def processes_using(out: Path) -> list[str]:
    """Processes whose command line names the report folder: the pytest child, the workload runs."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(out) in cmdline and state != "Z":
            found.append(f"{pid}: {cmdline[:200]}")
    return found


def descendants(pid: int) -> set[int]:
    """Every living process below `pid` (children, grandchildren, ...)."""
    parents = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(entry)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    living = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            living.add(pid)
    return living


class Run:
    """The smoke tests at the quick level in a subprocess, its output collected as it comes."""

    def __init__(self, out: Path, *args: str) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "smoke_tests", "--level", "quick", "--out", str(out), *args],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},  # the workloads' logs show each epoch as it starts
        )  # fmt: skip
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def wait_for(self, condition, what: str, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None, f"the run ended before {what}:\n{''.join(self.lines)[-3000:]}"
            assert time.monotonic() < deadline, f"no {what} after {timeout} s"
            time.sleep(0.1)

    def stop_with(self, sig: int) -> tuple[int, str]:
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=120)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self.reader.join(timeout=10)
        return code, "".join(self.lines)


def assert_interrupted_report(out: Path, sig: int, code: int, output: str, when: str) -> dict:
    name = signal.Signals(sig).name
    context = f"{name} {when} (KW_SIGNAL_SEED={SEED})\n{output[-3000:]}"
    assert code == 128 + sig, context
    assert "Traceback" not in output, context
    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] == name and report["verdict"] == "INTERRUPTED", context
    suite = [c for c in report["checks"] if c["id"] == "suite"]
    assert len(suite) == 1 and f"interrupted by {name}" in suite[0]["message"], context
    finished = (
        [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        if (out / "results.jsonl").exists()
        else []
    )
    assert [c["id"] for c in report["checks"] if c["id"] != "suite"] == [c["id"] for c in finished], context
    assert "INTERRUPTED" in (out / "report.html").read_text()
    assert "SMOKE TEST INTERRUPTED" in output, context
    deadline = time.monotonic() + 10  # orphans are reaped by whoever inherits them
    while (left := processes_using(out)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"left behind after {context[:80]}: {left}"
    return report


@pytest.mark.parametrize("sig", SIGNALS, ids=[s.name for s in SIGNALS])
def test_a_signal_at_a_random_time_leaves_an_interrupted_report(tmp_path: Path, sig: int) -> None:
    delay = random.Random(SEED + sig).uniform(0, 45)
    run = Run(tmp_path / "report")
    run.wait_for(lambda: any("smoke tests (quick) ->" in line for line in run.lines), "report folder")
    time.sleep(delay)
    code, output = run.stop_with(sig)
    assert_interrupted_report(tmp_path / "report", sig, code, output, f"{delay:.1f} s after the start")


@pytest.mark.parametrize("sig", SIGNALS, ids=[s.name for s in SIGNALS])
def test_a_signal_during_a_workload_stops_it_and_keeps_its_result(tmp_path: Path, sig: int) -> None:
    out = tmp_path / "report"
    run = Run(out, "-k", "workload and moons")
    log = out / "workloads" / "moons.log"
    run.wait_for(lambda: log.is_file() and "Epoch 5/" in log.read_text(), "moons training")
    time.sleep(random.Random(SEED - sig).uniform(0, 0.5))  # within its 100 epochs (seconds on a CPU)
    code, output = run.stop_with(sig)
    report = assert_interrupted_report(out, sig, code, output, "during a workload")
    # The workload got SIGTERM from the runner and ended like a Ctrl-C: its result.json says interrupted.
    results = list((out / "workloads").glob("*/result.json"))
    statuses = {p.parent.name: json.loads(p.read_text())["status"] for p in results}
    assert statuses.get("moons") == "interrupted", (statuses, report["checks"][-1])


# --- The runner killed, or its terminal closed: nothing left behind ---------------------------------------
@pytest.mark.parametrize("isolation", ["worker", "subprocess"])
def test_sigkill_of_the_runner_leaves_no_check_process_or_workload(tmp_path: Path, isolation: str) -> None:
    """Nothing runs after SIGKILL in the runner: its check process, and the workload that process runs, die
    with it (the parent-death signal), the workload ending like Ctrl-C with its result written."""
    out = tmp_path / "report"
    run = Run(out, "-k", "workload and moons", "--isolation", isolation)
    log = out / "workloads" / "moons.log"
    run.wait_for(lambda: log.is_file() and "Epoch 5/" in log.read_text(), "moons training")
    below = descendants(run.proc.pid)  # the check process, the worker or the workload's interpreter
    assert len(below) >= 2, below
    run.proc.kill()
    finished = "Epoch 100/100" in log.read_text()
    run.proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while (left := alive(below) | set(processes_using(out))) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"left behind after SIGKILL of the runner ({isolation}): {left}"
    result = json.loads((out / "workloads" / "moons" / "result.json").read_text())
    assert finished or result["status"] == "interrupted", result["status"]


def test_a_closed_terminal_stops_the_run_with_a_report(tmp_path: Path) -> None:
    """An SSH session that drops: the terminal hangs up (SIGHUP to the runner, and its writes fail with EIO).
    The run ends like SIGTERM: checks stopped, report written and marked interrupted, exit 129."""
    out = tmp_path / "report"
    log = out / "workloads" / "moons.log"
    argv = [sys.executable, "-m", "smoke_tests", "--out", str(out), "-k", "workload and moons"]
    code, shown = hang_up_when(argv, lambda _: log.is_file() and "Epoch 5/" in log.read_text(),
                               env={"PYTHONUNBUFFERED": "1"})  # fmt: skip
    assert code == 128 + signal.SIGHUP, shown[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] == "SIGHUP" and report["verdict"] == "INTERRUPTED"
    assert "INTERRUPTED" in (out / "report.html").read_text()
    deadline = time.monotonic() + 10
    while (left := processes_using(out)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"left behind after the terminal closed: {left}"
