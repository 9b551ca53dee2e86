"""The ansible-playbook run of ansible/fleet.yml: its output to the terminal (Ansible's own progress, host by
host) and to the run's ansible.log; SIGINT and SIGTERM stop it, and what came back is still reported."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fleet.inventory import ANSIBLE_DIR

PLAYBOOK = ANSIBLE_DIR / "fleet.yml"
# Ansible's SSH connection sends no keep-alives: a host whose network drops during a long task would keep the
# run waiting for as long as TCP retries (many minutes). With these, ssh gives up after about a minute of
# silence (4 probes 15 s apart) and Ansible records the host as unreachable. An inventory's own
# ansible_ssh_extra_args takes precedence over this default.
SSH_KEEPALIVE = "-o ServerAliveInterval=15 -o ServerAliveCountMax=4"
STOP_GRACE_S = 30.0


class Stop:
    """SIGINT, SIGTERM and SIGHUP (a closed terminal), recorded; the playbook is asked to stop (SIGINT to its
    process group), then killed after STOP_GRACE_S, and the report of what came back is written."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._record)

    def _record(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
            os.write(2, f"\nfleet: {self.name} received: stopping Ansible, writing the report\n".encode())

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""


def _pump(pipe: Any, log: Any) -> threading.Thread:
    def copy() -> None:
        terminal = True
        for line in iter(pipe.readline, b""):
            text = line.decode(errors="replace")
            log.write(text)
            log.flush()
            if terminal:
                try:
                    sys.stdout.write(text)
                    sys.stdout.flush()
                except OSError:  # a closed terminal (SIGHUP): the log keeps everything
                    terminal = False

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread


def run_playbook(argv: list[str], log: Path, stop: Stop) -> dict[str, Any]:
    """Run ansible-playbook (`argv`) from ansible/ (its ansible.cfg); {rc, interrupted, seconds}."""
    # Unbuffered: Ansible's progress reaches the terminal (a pipe here) task by task, not at the end.
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "PYTHONUNBUFFERED": "1"}
    env.setdefault("ANSIBLE_SSH_EXTRA_ARGS", SSH_KEEPALIVE)
    started = time.monotonic()
    with log.open("w") as out:
        out.write(f"$ {' '.join(argv)}\n\n")
        out.flush()
        proc = subprocess.Popen(
            argv, cwd=ANSIBLE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, process_group=0
        )
        pump = _pump(proc.stdout, out)
        asked_at = None
        while True:
            try:
                proc.wait(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                pass
            if stop.signum is not None and asked_at is None:
                asked_at = time.monotonic()
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGINT)
            elif asked_at is not None and time.monotonic() - asked_at > STOP_GRACE_S:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
        pump.join(timeout=5)
    return {
        "rc": proc.returncode,
        "interrupted": stop.name or None,
        "seconds": round(time.monotonic() - started, 1),
        "log": log.name,
    }
