"""What the stand-in frameworks share: their spec (tests/gpu_doctor/staging.py Machine.framework) and
TensorFlow's logging rule, as TensorFlow 2.21 applies it (measured: tests/gpu_doctor/test_framework_words.py).

A line "I0000 ...", "W0000 ...", "E0000 ...", "F0000 ..." is written only when TF_CPP_MIN_LOG_LEVEL allows its
level (0: all, 1: W and above, 2: E and above, 3: F only); a line without a level (absl's "WARNING: All log
messages before absl::InitializeLog() is called are written to STDERR", LLVM's fatal errors) always is.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

LEVELS = {"I": 0, "W": 1, "E": 2, "F": 3}


def spec(name: str) -> dict[str, Any]:
    folder = os.environ.get("KW_FAKE_FRAMEWORK")
    path = Path(folder) / f"{name}.json" if folder else None
    return json.loads(path.read_text()) if path and path.is_file() else {}


def log(lines: list[str] | str | None) -> None:
    minimum = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") or 0)
    for line in [lines] if isinstance(lines, str) else lines or []:
        level = LEVELS.get(line[:1]) if line[1:5].isdigit() else None
        if level is None or level >= minimum:
            os.write(2, (line.rstrip("\n") + "\n").encode())


def on_gpu(s: dict[str, Any], where: str) -> None:
    """What the first GPU operation (``where``: "first", "xla", or "import": the import itself) does, by the
    spec."""
    if s.get("at", "first") != where:
        return
    log(s.get("compute_log"))
    if s.get("abort"):
        os.write(2, (s["abort"].rstrip("\n") + "\n").encode())
        os.abort()  # like LLVM's report_fatal_error: no Python exception, the process dies on SIGABRT
    if s.get("exit") is not None:
        sys.stderr.flush()
        os._exit(int(s["exit"]))
    if s.get("hang"):
        time.sleep(3600)
    if s.get("fail"):
        raise RuntimeError(s["fail"])
