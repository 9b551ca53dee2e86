"""A stand-in for `workloads.cli.main` in the workload worker
(--smoke-worker-entry=tests.smoke.fake_workloads:main): each workload crashes, hangs, raises, exits or passes
on demand, in milliseconds and without a framework.

What each does comes from $FAKE_WORKLOADS, e.g. "moons=crash,mnist=hang,transfer=raise" (default: pass).
A passing run writes a minimal result.json that the workload check accepts.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

MODES = ("pass", "crash", "hang", "raise", "exit")


def behaviour(name: str) -> str:
    pairs = (p.split("=", 1) for p in os.environ.get("FAKE_WORKLOADS", "").split(",") if "=" in p)
    return dict(pairs).get(name, "pass")


def result(name: str, seconds: float) -> dict:
    return {
        "workload": name,
        "status": "passed",
        "message": "fake",
        "dataset": {"name": "fake"},
        "metrics": {"test_accuracy": 1.0},
        "thresholds": {"test_accuracy": {"op": ">=", "value": 0.5, "actual": 1.0, "passed": True}},
        "timings": {
            "total_s": seconds,
            "first_epoch_s": seconds / 4,
            "compile_s": seconds / 8,
            "steady_ms_per_step": 1.0,
            "samples_per_s": 1.0,
            "phases": {
                "data": seconds / 4,
                "train": seconds / 2,
                "evaluate": seconds / 8,
                "plots": seconds / 8,
            },
        },
        "plots": [],
    }


def main(argv: list[str]) -> int:
    name = argv[0]
    out = Path(argv[argv.index("--out") + 1])
    mode = behaviour(name)
    print(f"fake {name}: {mode} (pid {os.getpid()})", flush=True)
    print(f"fake {name}: a line on stderr", file=sys.stderr, flush=True)
    if mode == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif mode == "hang":
        time.sleep(3600)
    elif mode == "raise":
        raise RuntimeError(f"fake {name} raised")
    elif mode == "exit":
        os._exit(7)
    started = time.perf_counter()
    time.sleep(0.2)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result(name, time.perf_counter() - started)))
    return 0
