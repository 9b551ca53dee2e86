"""The frameworks Keras runs on here (the backends the doctor diagnoses and the workloads train with), the one
a run uses, and how much of TensorFlow's C++ log every command keeps: decided here, for every command."""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"
# TensorFlow's C++ log level (0 I, 1 W, 2 E) for every command that imports it: 1, so that its W-level lines,
# which carry its reasons ("Cannot dlopen some GPU libraries", "Can't find libdevice directory"), reach a
# failing check's message and a dying process's last words. A level the user set stands. (The doctor's own
# framework child logs everything, 0, and picks what to show: gpu_doctor/framework.py.)
TF_LOG_LEVEL = "1"


def active_backend(env: Mapping[str, str] | None = None) -> str:
    """The backend Keras will use (or uses): `$KERAS_BACKEND`, else the default; nothing is imported."""
    return (os.environ if env is None else env).get("KERAS_BACKEND") or DEFAULT_BACKEND


def keep_tensorflow_reasons(env: MutableMapping[str, str] | None = None) -> None:
    """TF_CPP_MIN_LOG_LEVEL at TF_LOG_LEVEL unless set, before TensorFlow is imported (here or in a child)."""
    (os.environ if env is None else env).setdefault("TF_CPP_MIN_LOG_LEVEL", TF_LOG_LEVEL)
