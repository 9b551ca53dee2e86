"""pytest plugin for the check process: the check DIE_IN names (its id's end, e.g.
"test_layer[device_nodes]") ends the process the way DIE_HOW says, after writing DIE_SAYS to file descriptor 2
(as native code does, past pytest's capture):

- ``exit``: os._exit(DIE_CODE, default 1), what a library that gives up on the process does;
- ``abort``: os.abort(), what LLVM's fatal error in XLA does ("LLVM ERROR: PTX version 8.5 does not support
  target 'sm_120'", tensorflow/tensorflow#111958);
- ``kill``: SIGKILL to itself, what the kernel's OOM killer does.

Loaded with PYTEST_ADDOPTS="-p tests.smoke.dying_check" (tests/smoke/test_runner_incomplete.py).
"""

from __future__ import annotations

import os
import signal

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    if not item.nodeid.endswith(os.environ.get("DIE_IN", "\0")):
        return
    os.write(2, (os.environ.get("DIE_SAYS", "") + "\n").encode())
    how = os.environ.get("DIE_HOW", "exit")
    if how == "abort":
        os.abort()
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(int(os.environ.get("DIE_CODE", "1")))
