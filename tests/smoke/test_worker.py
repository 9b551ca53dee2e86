"""The workload worker (smoke_tests/worker.py): a workload that crashes, hangs or raises costs only its own
check, the next one gets a fresh worker, no worker outlives its parent, and the report is still written with
each check's time breakdown. A stand-in for the workloads' CLI (fake_workloads.py) crashes and hangs on
demand, without a framework, so these take seconds."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smoke_tests import timing
from smoke_tests.settings import HERE as SMOKE_DIR
from smoke_tests.worker import WorkloadWorker

ROOT = Path(__file__).resolve().parents[2]
FAKE = "tests.smoke.fake_workloads:main"


def gone(pid: int, within: float = 10.0) -> bool:
    """True once `pid` no longer runs (a zombie waiting for its reaper counts as gone)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def pids_in(log: Path) -> list[int]:
    return [int(p) for p in re.findall(r"\(pid (\d+)\)", log.read_text())]


@pytest.fixture
def fake_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the worker imports tests.smoke.fake_workloads from here
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("FAKE_WORKLOADS", "moons=crash,mnist=hang,transfer=raise,other=exit")


def test_a_crash_a_hang_and_an_exception_cost_only_their_own_run(tmp_path: Path, fake_env: None) -> None:
    worker = WorkloadWorker(tmp_path / "worker.log", ["moons"], FAKE)
    worker.start()

    def run(name: str, timeout: float = 30):
        log = tmp_path / f"{name}.log"
        log.unlink(missing_ok=True)
        return worker.run([name, "--out", str(tmp_path / name)], log, timeout), log

    try:
        crashed, log = run("moons")
        assert crashed.exit is None and "signal 11 (SIGSEGV)" in crashed.error
        assert "fake moons: crash" in log.read_text() and "a line on stderr" in log.read_text()
        assert crashed.startup_s > 0  # it waited for the worker to be ready
        first = pids_in(log)[0]
        assert gone(first)

        passed, log = run("convnet-viz")  # a new worker
        assert passed.exit == 0 and worker.starts == 2
        assert (tmp_path / "convnet-viz" / "result.json").is_file()
        second = pids_in(log)[0]

        again, log = run("convnet-viz")  # the same worker again: no start-up to wait for
        assert again.exit == 0 and again.startup_s == 0 and pids_in(log) == [second]

        hung, log = run("mnist", timeout=2)
        assert hung.exit is None and hung.error == "stopped after 2 s" and 2 <= hung.wall_s < 10
        assert gone(second)

        raised, log = run("transfer")  # a traceback: exit 1 as the CLI would, then a fresh worker
        assert raised.exit == 1 and "RuntimeError: fake transfer raised" in log.read_text()
        third = pids_in(log)[0]
        assert gone(third)

        exited, _ = run("other")
        assert exited.exit is None and "exited with status 7" in exited.error
        assert worker.starts == 4  # crash, hang, exception: each retired one
    finally:
        worker.stop()


PARENT = """
import sys, time
from pathlib import Path
from smoke_tests.worker import WorkloadWorker
worker = WorkloadWorker(Path(sys.argv[1]), ["mnist"], "tests.smoke.fake_workloads:main")
if sys.argv[2] == "busy":  # a workload that never ends
    import threading
    threading.Thread(target=worker.run, args=(["mnist", "--out", sys.argv[1] + ".out"],
                     Path(sys.argv[1] + ".run"), 3600), daemon=True).start()
else:
    worker.start()
time.sleep(1)
while worker.proc is None or not Path(sys.argv[1] + ".run").exists() and sys.argv[2] == "busy":
    time.sleep(0.1)
print(worker.proc.pid, flush=True)
time.sleep(3600)
"""


@pytest.mark.parametrize("state", ["idle", "busy"])
def test_the_worker_dies_with_its_parent(tmp_path: Path, fake_env: None, state: str) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path / "worker.log"), state],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        pid = int(parent.stdout.readline())
        assert not gone(pid, within=0.5)
    finally:
        parent.send_signal(signal.SIGKILL)  # no chance to clean up: the worker must notice by itself
        parent.wait()
    assert gone(pid), f"worker {pid} outlived its parent"


def quick_settings(tmp_path: Path, check_timeout_s: int) -> Path:
    text = (SMOKE_DIR / "settings.toml").read_text()
    assert text.count("check_timeout_s = 300") == 1
    path = tmp_path / "settings.toml"
    path.write_text(text.replace("check_timeout_s = 300", f"check_timeout_s = {check_timeout_s}"))
    return path


def test_the_report_is_written_with_a_crashing_and_a_hanging_workload(tmp_path: Path, fake_env: None) -> None:
    out = tmp_path / "report"
    env = {
        **os.environ,
        "SMOKE_SETTINGS": str(quick_settings(tmp_path, 8)),
        "PYTEST_ADDOPTS": f"--smoke-worker-entry={FAKE}",  # the check process's option, a test hook
    }
    proc = subprocess.run(
        [sys.executable, "-m", "smoke_tests", "-k", "workload or environment_variables", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["workload[moons]"]["status"] == "failed"
    assert "killed by signal 11 (SIGSEGV)" in checks["workload[moons]"]["message"]
    assert checks["workload[mnist]"]["status"] == "failed"
    assert "stopped after 7 s" in checks["workload[mnist]"]["message"]
    assert checks["workload[transfer]"]["status"] == "failed"  # exit 1, no result.json
    assert checks["workload[convnet-viz]"]["status"] == "passed"
    assert checks["environment_variables"]["status"] == "passed"  # the other checks ran
    assert all("not the real workloads" in w for c in checks.values() if "workload" in c["name"]
               for w in c["warnings"])  # fmt: skip
    # Every worker (three: the crash and the hang each retired one, as did the exception) is gone.
    pids = {p for name in ("moons", "mnist", "convnet-viz", "transfer")
            for p in pids_in(out / "workloads" / f"{name}.log")}  # fmt: skip
    assert len(pids) == 3 and all(gone(p) for p in pids)
    # The breakdown: every check has one, in the report's categories, adding up to its time.
    for c in report["checks"]:
        assert set(c["breakdown"]) == set(timing.CATEGORIES), c["name"]
        assert sum(c["breakdown"].values()) == pytest.approx(c["duration_s"] + c["setup_s"], abs=0.1)
    passed = checks["workload[convnet-viz]"]["breakdown"]
    assert passed["data"] > 0 and passed["compile"] > 0 and passed["steady"] > 0 and passed["plots"] > 0
    assert checks["workload[moons]"]["breakdown"]["start-up"] > 0  # it waited for the first worker
    assert report["time"]["start-up"] > 0 and report["timeline"]["checks_s"] > 0
    page = (out / "report.html").read_text()
    assert 'id="breakdown"' in page and page.count('<div class="bar">') == len(report["checks"])
    assert "time in the checks (s): start-up" in proc.stdout
