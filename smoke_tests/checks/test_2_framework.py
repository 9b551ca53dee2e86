"""Framework checks for the active Keras backend: GPU visible, matmul, convolution, XLA, mixed precision.

On a machine without a GPU the GPU-only checks are n/a and the rest run on the CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gpu_doctor.build import installed_build
from gpu_doctor.framework import explain_failure
from gpu_doctor.system import InstalledMetadata
from smoke_tests import framework_ops
from smoke_tests.plugin import CheckRecord
from smoke_tests.settings import settings


def explain(err: BaseException, system: dict[str, Any]) -> str:
    """The error's first line and the layer it points at (gpu_doctor's rules: memory before libraries); the
    remedy installs the GPU libraries into this environment (gpu_doctor.environment)."""
    install = installed_build(framework_ops.name(), InstalledMetadata()).install_gpu
    cause, remedy = explain_failure(f"{type(err).__name__}: {err}", system, install)
    return f"{cause} (run: {remedy})"


def run_explained(system: dict[str, Any], fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except (NotImplementedError, pytest.skip.Exception):
        raise
    except Exception as err:
        pytest.fail(explain(err, system))


def test_gpu_visible(check: CheckRecord, system: dict[str, Any], framework_gpus: list[str]) -> None:
    check.detail("framework", f"{framework_ops.name()} {framework_ops.framework_version()}")
    check.detail("framework_gpus", framework_gpus)
    nvml_count = len(system["gpus"])
    if nvml_count == 0 and not framework_gpus:
        pytest.skip("n/a: no GPU (see system/gpu_found)")
    if not framework_gpus:
        reason = framework_ops.gpu_reason() or "it gave no reason"
        pytest.fail(
            f"NVML sees {nvml_count} GPU(s) but {framework_ops.name()} sees none; it says: {reason} (the "
            "system/layer checks above name the broken layer; python -m smoke_tests doctor shows them)"
        )
    if nvml_count and len(framework_gpus) != nvml_count:
        check.warn(f"NVML sees {nvml_count} GPUs, {framework_ops.name()} sees {len(framework_gpus)}")


def test_matmul_gpu_matches_cpu(
    check: CheckRecord, need_gpu: None, seed: int, system: dict[str, Any]
) -> None:
    rng = np.random.default_rng(seed)
    a, b = (
        rng.standard_normal((512, 512), dtype=np.float32),
        rng.standard_normal((512, 512), dtype=np.float32),
    )
    gpu = run_explained(system, framework_ops.matmul_numpy, a, b, "gpu")
    cpu = framework_ops.matmul_numpy(a, b, "cpu")
    rel = float(np.linalg.norm(gpu - cpu) / np.linalg.norm(cpu))
    limit = settings()["framework"]["matmul_rel_error_max"]
    check.figure("relative_error", rel, "", limit=limit)
    assert rel <= limit, f"GPU matmul differs from the CPU result: relative error {rel:.2e} > {limit:.0e}"


def _conv_model(keras: Any, seed: int) -> Any:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Conv2D(8, 3, strides=2),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_convolution_forward_backward(
    check: CheckRecord, device: str, seed: int, system: dict[str, Any]
) -> None:
    import keras

    rng = np.random.default_rng(seed)
    x, y = rng.random((32, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 32)
    with keras.device(framework_ops.keras_device(device)):
        model = run_explained(system, _conv_model, keras, seed)
        before = [w.copy() for w in model.get_weights()]
        losses = [float(run_explained(system, model.train_on_batch, x, y)) for _ in range(3)]
        out = np.asarray(model.predict(x, verbose=0))
    check.detail("device", device)
    check.detail("losses", losses)
    assert all(np.isfinite(losses)), f"convolution training gave non-finite losses {losses}"
    changed = sum(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert changed > 0, "the backward pass did not change any weight"
    if device == "gpu":
        with keras.device("cpu:0"):
            cpu_model = _conv_model(keras, seed)
            cpu_model.set_weights(model.get_weights())
            ref = np.asarray(cpu_model.predict(x, verbose=0))
        rel = float(np.linalg.norm(out - ref) / np.linalg.norm(ref))
        check.figure("gpu_vs_cpu_relative_error", rel, "")
        limit = settings()["framework"]["matmul_rel_error_max"]
        assert rel <= limit, f"cuDNN convolution differs from the CPU: relative error {rel:.2e} > {limit:.0e}"


def test_xla_compiles(check: CheckRecord, device: str, seed: int, system: dict[str, Any]) -> None:
    if framework_ops.name() == "torch":
        pytest.skip("n/a: the torch backend does not use XLA")
    compiled, plain = run_explained(system, framework_ops.xla_compile_and_run, device, seed)
    check.detail("device", device)
    assert np.isclose(compiled, plain, rtol=1e-3), f"XLA result {compiled} differs from the plain {plain}"


def test_mixed_precision(check: CheckRecord, device: str, seed: int, system: dict[str, Any]) -> None:
    import keras

    # float16 is what GPUs accelerate; on a CPU bfloat16 is the supported mixed policy.
    policy = "mixed_float16" if device == "gpu" else "mixed_bfloat16"
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        rng = np.random.default_rng(seed)
        x, y = rng.random((64, 32), dtype=np.float32), rng.integers(0, 10, 64)
        with keras.device(framework_ops.keras_device(device)):
            keras.utils.set_random_seed(seed)
            model = keras.Sequential(
                [
                    keras.Input((32,)),
                    keras.layers.Dense(64, activation="relu"),
                    keras.layers.Dense(10, dtype="float32"),
                ]
            )
            model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            losses = [float(run_explained(system, model.train_on_batch, x, y)) for _ in range(3)]
        compute_dtype = model.layers[0].compute_dtype
    finally:
        keras.config.set_dtype_policy(previous)
    check.detail("policy", policy)
    check.detail("losses", losses)
    assert compute_dtype == policy.removeprefix("mixed_"), f"layers compute in {compute_dtype}, not {policy}"
    assert all(np.isfinite(losses)), f"mixed precision training gave non-finite losses {losses}"
