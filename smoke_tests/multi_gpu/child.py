"""The check process's side of the measuring child (smoke_tests/multi_gpu/measure.py): start it once, wait for
each part's result file, and turn a crash or a hang into one line that names the part it cost.

The child shares the check process's process group, so whatever stops the checks (Ctrl-C, the runner's
timeout) stops it too; the runner kills the group after the checks in any case.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from smoke_tests.multi_gpu import devices as device_list
from smoke_tests.worker import gpu_memory_env

# Test hooks: negative controls handed to the measuring process (its --fault, from
# tests/smoke/multi_gpu_faults.py), and a stand-in for the measuring module (tests/smoke/fake_measure.py).
FAULTS: list[str] = []
DEFAULT_MEASURE = MEASURE = "smoke_tests.multi_gpu.measure"


def command(
    out: Path,
    plan: device_list.Plan,
    level: str,
    system: Path,
    parts: list[str],
    seed: int,
    data: Path | None,
) -> tuple[list[str], dict[str, str]]:
    """The measuring process's command line and environment for a plan ("gpu" or "simulated")."""
    argv = [sys.executable, "-m", MEASURE, "--out", str(out), "--level", level,
            "--system", str(system), "--parts", ",".join(parts), "--seed", str(seed),
            *(["--data", str(data)] if data else []),
            *(["--simulated"] if plan.mode == "simulated" else []),
            *(["--stand-in"] if device_list.STAND_IN_FOR_NVML else []),
            *(f"--fault={f}" for f in FAULTS)]  # fmt: skip
    env = {**os.environ, **gpu_memory_env(os.environ)}  # shares the GPUs with the check process
    if plan.mode == "simulated":
        env["JAX_PLATFORMS"] = "cpu"
    return argv, env


class ChildFailed(Exception):
    """The measuring process died, or passed its time, before it wrote a part."""


class MeasureChild:
    def __init__(self, out: Path, command: list[str], env: dict[str, str]) -> None:
        self.out, self.command, self.env = out, command, env
        self.log = out / "measure.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env)

    def _why(self) -> str:
        assert self.proc is not None
        code = self.proc.returncode
        if code is not None and code < 0:
            try:
                how = f"was killed by signal {-code} ({signal.Signals(-code).name})"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with status {code}"
        lines = self.log.read_text(errors="replace").strip().splitlines() if self.log.is_file() else []
        return f"the measuring process {how} (log: {self.log.name}: {(lines or [''])[-1][:160]})"

    def result(self, part: str, timeout: float) -> dict[str, Any]:
        """The part's result as the child wrote it; ChildFailed when the child died or hung before it."""
        path = self.out / f"{part}.json"
        deadline = time.monotonic() + timeout
        while True:
            if path.is_file():
                return json.loads(path.read_text())
            if self.proc is None or self.proc.poll() is not None:
                if path.is_file():  # written just before it exited
                    return json.loads(path.read_text())
                raise ChildFailed(f"{self._why()} before the {part} measurement")
            if time.monotonic() > deadline:
                self.stop()
                raise ChildFailed(
                    f"the {part} measurement was stopped after {timeout:.0f} s (log: {self.log.name})"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.proc = proc  # keep its return code for the messages
