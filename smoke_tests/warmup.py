"""The PTX warm-up: before the timed checks, compile once what a GPU without native code in the build needs.

TensorFlow 2.21's wheels carry machine code up to sm_89 and compute_90 PTX, so on an H100 (sm_90) the driver
JIT-compiles every kernel on its first use: TensorFlow warns this "could take 30 minutes or longer"
(tensorflow/tensorflow#60739, #62320). The driver keeps what it compiled in its compute cache
(CUDA_CACHE_PATH, at most CUDA_CACHE_MAXSIZE bytes: NVIDIA's CUDA C++ Programming Guide, "CUDA Environment
Variables"). So the smoke test points that cache at a folder that outlives the run (``cuda_cache_env``) and,
when a GPU needs the build's PTX, runs this module first, untimed, in its own process: the framework's matmul,
convolution with its gradient and XLA function (the doctor's compute set) and one small Keras training in
float32 and float16. The check time-outs start after it; the next run finds the kernels in the cache.

    python -m smoke_tests.warmup    (the runner starts it; prints one JSON line: {"seconds": s} or {"error"})
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gpu_doctor.backends import keep_tensorflow_reasons
from smoke_tests import lifeline

# The driver's default cache is 256 MiB, too small for a framework's kernels; 4 GiB is its maximum.
CACHE_MAXSIZE = str(4 * 2**30)
CACHE_SUBDIR = "keras-workstation/cuda"
ENTRY = "smoke_tests.warmup:run"  # what the runner's warm-up process calls (a test hook can replace it)
MODES = ("auto", "always", "never")  # SMOKE_WARMUP: when a GPU needs PTX (auto), every run, or never


def cache_dir(environ: Mapping[str, str]) -> Path:
    """The driver's compiled kernels go to $XDG_CACHE_HOME (or ~/.cache)/keras-workstation/cuda."""
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".cache")
    return Path(base) / CACHE_SUBDIR


def cuda_cache_env(environ: Mapping[str, str]) -> dict[str, str]:
    """CUDA_CACHE_PATH and CUDA_CACHE_MAXSIZE for the smoke test's processes, where the user set neither."""
    wanted = {"CUDA_CACHE_PATH": str(cache_dir(environ)), "CUDA_CACHE_MAXSIZE": CACHE_MAXSIZE}
    return {k: v for k, v in wanted.items() if not environ.get(k)}


def ptx_targets(diagnosis: dict[str, Any]) -> list[str]:
    """sm_XY of each GPU that runs the build's PTX (the CUDA driver layer's facts), e.g. ["sm_90"]."""
    layer = next((x for x in diagnosis.get("layers", []) if x.get("name") == "cuda_driver"), {})
    facts = layer.get("facts") or {}
    ccs = {d.get("ordinal"): d.get("compute_capability") for d in facts.get("devices", [])}
    targets = []
    for key, value in facts.items():  # "cuda<ordinal>_build": {"code": "ptx" | "sass" | None, ...}
        if key.endswith("_build") and isinstance(value, dict) and value.get("code") == "ptx":
            cc = ccs.get(int(key.removeprefix("cuda").split("_")[0]), "")
            targets.append("sm_" + cc.replace(".", "") if cc else "sm_?")
    return sorted(set(targets))


def warm_up(
    diagnosis: dict[str, Any], env: Mapping[str, str], stopped: Callable[[], bool], heartbeat_s: float = 30.0
) -> dict[str, Any] | None:
    """Run the warm-up in a process of its own when a GPU needs the build's PTX (SMOKE_WARMUP=auto, the
    default), always, or never; untimed, with a line every ``heartbeat_s``. None: not run. ``stopped``: the
    runner's SIGINT / SIGTERM, which ends it at once."""
    mode = (env.get("SMOKE_WARMUP") or "auto").strip().lower()
    targets = ptx_targets(diagnosis)
    if mode == "never" or (mode != "always" and not targets):
        return None
    what = f"compiling kernels for {', '.join(targets)}" if targets else "warming up the GPU kernels"
    cache = env.get("CUDA_CACHE_PATH") or str(cache_dir(env))
    print(f"  {what} (untimed: the check time-outs start after it; cache {cache}) ...", flush=True)
    if env.get("SMOKE_WARMUP_ENTRY"):
        print(
            f"  !! test hook SMOKE_WARMUP_ENTRY={env['SMOKE_WARMUP_ENTRY']}: not the real warm-up", flush=True
        )
    started = time.perf_counter()
    proc = subprocess.Popen(  # through the lifeline: it dies with the runner, however the runner ends
        lifeline.command([sys.executable, "-m", "smoke_tests.warmup"]), env=dict(env), stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, process_group=0,
    )  # fmt: skip
    next_line = started + heartbeat_s
    while proc.poll() is None:
        if stopped():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return {"what": what, "targets": targets, "interrupted": True}
        if time.perf_counter() > next_line:
            print(f"  ... still {what}: {time.perf_counter() - started:.0f} s", flush=True)
            next_line += heartbeat_s
        time.sleep(0.2)
    seconds = round(time.perf_counter() - started, 1)
    lines = (proc.stdout.read() if proc.stdout else "").strip().splitlines() or ["{}"]
    try:
        result = json.loads(lines[-1])
    except ValueError:
        result = {}
    if proc.returncode != 0:
        error = result.get("error") or f"the warm-up process exited with {proc.returncode}"
        print(f"  {what}: failed after {seconds} s ({error}); the checks say what is broken", flush=True)
        return {"what": what, "targets": targets, "seconds": seconds, "error": error}
    print(f"  {what}: {seconds} s, cached in {cache} for next time", flush=True)
    return {"what": what, "targets": targets, "seconds": seconds, "cache": cache}


def run() -> dict[str, Any]:
    """The warm-up itself, on GPU 0 of the active Keras backend."""
    import importlib

    import numpy as np

    from gpu_doctor.child import COMPUTE, DEVICES, inputs
    from smoke_tests import framework_ops

    backend = framework_ops.name()
    module = importlib.import_module(backend)
    device = DEVICES[backend][0] if framework_ops.gpu_devices() else DEVICES[backend][1]
    COMPUTE[backend](module, inputs(), device)
    import keras

    rng = np.random.default_rng(0)
    x, y = rng.random((64, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 64)
    for policy in ("float32", "mixed_float16"):
        keras.config.set_dtype_policy(policy)
        model = keras.Sequential([
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.25),
            keras.layers.Dense(10, dtype="float32"),
        ])  # fmt: skip
        model.compile(
            optimizer="adam",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        model.predict(x, verbose=0)
    keras.config.set_dtype_policy("float32")
    return {"backend": backend, "device": device}


def main() -> int:
    keep_tensorflow_reasons()
    started = time.perf_counter()
    module_name, function = (os.environ.get("SMOKE_WARMUP_ENTRY") or ENTRY).split(":")
    try:
        import importlib

        result = getattr(importlib.import_module(module_name), function)() or {}
    except Exception as err:  # reported by the runner in one line; the checks then say what is broken
        print(json.dumps({"error": f"{type(err).__name__}: {err}"[:500]}), flush=True)
        return 1
    print(json.dumps({**result, "seconds": round(time.perf_counter() - started, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
