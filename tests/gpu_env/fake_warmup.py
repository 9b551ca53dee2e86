"""Stand-ins for the smoke test's warm-up (test hook SMOKE_WARMUP_ENTRY=tests.gpu_env.fake_warmup:NAME)."""

from __future__ import annotations

import os
import time


def sleep() -> dict:
    """A warm-up that takes FAKE_WARMUP_S seconds, as a JIT of TensorFlow's PTX would."""
    time.sleep(float(os.environ.get("FAKE_WARMUP_S", "1")))
    return {"backend": "stand-in"}


def fail() -> dict:
    raise RuntimeError("CUDA_ERROR_INVALID_PTX: the stand-in's compilation failed")
