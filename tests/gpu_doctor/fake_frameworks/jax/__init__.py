"""A stand-in for JAX in the doctor's child process (tests only): its GPU list (or the exception jax.devices
raises) and what its first GPU computation does, as tests/gpu_doctor/staging.py's
Machine.framework("jax", ...) spec says."""

from __future__ import annotations

from typing import Any

import kw_fake_framework as fake
import numpy  # noqa: F401  (jax.numpy, reached only after the first GPU operation)

__version__ = "0.10.2"
_SPEC = fake.spec("jax")


def devices(kind: str | None = None) -> list[str]:
    fake.log(_SPEC.get("log"))
    if _SPEC.get("error"):
        raise RuntimeError(_SPEC["error"])
    return list(_SPEC.get("gpus", [])) if kind == "gpu" else ["cpu:0"]


def device_put(x: Any, dev: Any) -> Any:
    if str(dev) != "cpu:0":
        fake.on_gpu(_SPEC, "first")
    return x
