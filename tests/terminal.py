"""A program run with a pseudo-terminal as its controlling terminal, which then hangs up: what a dropped SSH
session does to it (SIGHUP to its foreground process group, and every later write to the terminal fails)."""

from __future__ import annotations

import os
import pty
import select
import signal
import time
from collections.abc import Callable

import pytest

from tests.conftest import REPO


def hang_up_when(
    argv: list[str], ready: Callable[[bytes], bool], env: dict[str, str] | None = None, wait_s: float = 600
) -> tuple[int, bytes]:
    """Run `argv` in REPO on a new pseudo-terminal; once `ready(what the terminal showed so far)`, close the
    terminal; return (the program's exit code, what it showed). It must end within 120 s of the hang-up."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the program, the pty its controlling terminal
        os.chdir(REPO)
        os.environ.update(env or {})
        os.execv(argv[0], argv)
    shown = b""
    deadline = time.monotonic() + wait_s
    while not ready(shown):  # read on, or the program blocks on a full terminal
        assert time.monotonic() < deadline and os.waitpid(pid, os.WNOHANG) == (0, 0), shown[-3000:]
        if select.select([fd], [], [], 0.1)[0]:
            try:
                shown += os.read(fd, 65536)
            except OSError:
                break
    os.close(fd)  # the terminal goes away
    deadline = time.monotonic() + 120
    while (status := os.waitpid(pid, os.WNOHANG)) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"{argv[1:4]} did not end after its terminal closed")
        time.sleep(0.2)
    return os.waitstatus_to_exitcode(status[1]), shown
