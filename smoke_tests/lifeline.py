"""Die with the parent: no process the smoke test starts outlives it, however the parent ends (SIGKILL too).

Linux's parent-death signal (prctl PR_SET_PDEATHSIG) is asked for in the child itself, then the child checks
that its parent is still the one it was started by (it may have died before the request). The signal
survives exec, so a command we do not own is started through this module:

    python -m smoke_tests.lifeline PARENT_PID COMMAND [ARGS...]   (the check process; a workload's process)

The workload worker calls `die_with_parent` itself (smoke_tests/worker.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int, signum: int = signal.SIGTERM) -> None:
    """`signum` to this process when its parent dies; exit now if `parent` is already gone."""
    with contextlib.suppress(Exception):  # Linux only; elsewhere the callers' other guards remain
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signum))
    if os.getppid() != parent:  # it died before the request above
        os._exit(1)


def command(argv: list[str], parent: int | None = None) -> list[str]:
    """`argv` run through this module, so that it dies with `parent` (default: this process)."""
    return [sys.executable, "-m", "smoke_tests.lifeline", str(parent or os.getpid()), *argv]


def main(argv: list[str]) -> None:
    parent, *cmd = argv
    die_with_parent(int(parent))
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
