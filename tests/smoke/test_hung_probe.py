"""A GPU probe that never returns (a wedged driver holding it inside a C call): Ctrl-C, SIGTERM or SIGHUP
still end `python -m smoke_tests` within seconds, with a report marked interrupted. The runner once printed
"SIGTERM received: stopping" and ran on; only SIGKILL stopped it, with no report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

# Loaded by every interpreter that has the folder on PYTHONPATH: in the runner (the variable is removed
# there, so the check process it starts probes normally) the GPU diagnosis never returns.
HANG = textwrap.dedent(
    """
    import os
    if os.environ.pop("KW_TEST_HANG_PROBE", None):
        import time
        import gpu_doctor

        def wedged(*args, **kwargs):
            time.sleep(3600)  # a probe stuck in the driver

        gpu_doctor.diagnose = wedged
    """
)
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


@pytest.mark.parametrize("sig", SIGNALS, ids=[s.name for s in SIGNALS])
def test_a_signal_stops_a_runner_whose_gpu_probe_hangs(tmp_path: Path, sig: int) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HANG)
    out = tmp_path / "report"
    path = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "KW_TEST_HANG_PROBE": "1", "PYTHONPATH": path}
    proc = subprocess.Popen([sys.executable, "-m", "smoke_tests", "--out", str(out)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not out.is_dir() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        time.sleep(1.0)  # inside the probe now
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        started = time.monotonic()
        stdout, stderr = proc.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    name = signal.Signals(sig).name
    assert proc.returncode == 128 + sig, stdout[-2000:] + stderr[-2000:]
    assert took < 15, f"{name} took {took:.1f} s to end the run"
    assert "Traceback" not in stderr, stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] == name and report["verdict"] == "INTERRUPTED"
    (suite,) = [c for c in report["checks"] if c["id"] == "suite"]
    assert f"interrupted by {name} before the checks started" in suite["message"]
