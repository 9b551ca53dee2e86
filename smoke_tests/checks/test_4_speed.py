"""Speed checks: matmul TFLOP/s against the expected-values table, host-to-device bandwidth, and the MNIST
stage-5 training ladder. Warm-up is excluded; each figure is the median of repeats, with its spread; NVML
telemetry is sampled in every timed window and a window in which the GPU throttled is invalid.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smoke_tests import framework_ops
from smoke_tests.plugin import CheckRecord
from smoke_tests.speed import (
    check_not_throttled,
    expected_for,
    judge,
    pcie_theoretical_gbs,
    summarize,
    throttle_events,
    time_repeats,
    timed_window,
)


def _gpu0(system: dict[str, Any], framework_gpu: dict[str, Any]) -> dict[str, Any]:
    """NVML's facts of the GPU the framework computes on (its GPU 0: not always NVML's GPU 0)."""
    index = framework_gpu.get("index")
    return next(
        (g for g in system["gpus"] if g.get("index") == index), system["gpus"][0] if system["gpus"] else {}
    )


def _time_warmup_and_repeats(check: CheckRecord, seconds: float, repeats: list[float]) -> None:
    """The report's breakdown: the untimed warm-up (compilation, library set-up) and the timed repeats."""
    check.time("compile", seconds - sum(repeats))
    check.time("steady", sum(repeats))


@pytest.mark.parametrize("precision", framework_ops.PRECISIONS)
def test_matmul_tflops(
    precision: str,
    check: CheckRecord,
    level: Mapping[str, Any],
    system: dict[str, Any],
    device: str,
    seed: int,
    framework_gpu: dict[str, Any],
) -> None:
    gpu = _gpu0(system, framework_gpu)
    if precision != "fp32":
        if device != "gpu":
            pytest.skip(f"n/a: no GPU ({precision} is measured on GPUs only)")
        cc = tuple(int(x) for x in str(gpu.get("compute_capability", "0.0")).split("."))
        if cc < (8, 0):
            pytest.skip(
                f"n/a: compute capability {gpu.get('compute_capability')} has no {precision} tensor cores"
            )
    n, steps, repeats = level["matmul_n"][device], level["matmul_steps"][device], level["repeats"]
    started = time.perf_counter()
    run = framework_ops.matmul_runner(n, precision, device, steps, seed)
    check.time("data", time.perf_counter() - started)
    started = time.perf_counter()
    with timed_window(check, f"matmul {precision}", device == "gpu", gpu.get("index", 0)) as window:
        times = time_repeats(run, repeats)
    _time_warmup_and_repeats(check, time.perf_counter() - started, times)
    stats = summarize([2 * n**3 * steps / t / 1e12 for t in times])
    entry = expected_for(str(gpu.get("name", ""))) if device == "gpu" else None
    expected = entry.get(f"expected_{precision}") if entry else None
    ok, verdict = judge(stats["median"], expected, entry["derate"] if entry else 0.0)
    check.figure(
        f"{precision}_tflops",
        stats["median"],
        "TFLOP/s",
        better="higher",
        spread=stats["spread"],
        n=n,
        steps=steps,
        repeats=repeats,
        expected=expected,
        basis=entry.get(f"basis_{precision}") if entry else None,
    )
    check.detail("verdict", f"{device}: {verdict}")
    if device == "cpu":
        check.detail("note", "CPU: reported only (no expected figure)")
    check_not_throttled({window.label: window.samples})
    assert ok, f"matmul {precision}: {verdict}"


def test_host_to_device_bandwidth(
    check: CheckRecord,
    need_gpu: None,
    level: Mapping[str, Any],
    system: dict[str, Any],
    framework_gpu: dict[str, Any],
) -> None:
    mib, steps = level["h2d_mib"], level["h2d_steps"]
    run = framework_ops.h2d_runner(mib, steps)
    started = time.perf_counter()
    gpu = _gpu0(system, framework_gpu)
    with timed_window(check, "host-to-device copy", True, gpu.get("index", 0)) as window:
        times = time_repeats(run, level["repeats"])
    _time_warmup_and_repeats(check, time.perf_counter() - started, times)
    stats = summarize([mib * 2**20 * steps / t / 1e9 for t in times])
    pcie = gpu.get("pcie", {})
    link = pcie_theoretical_gbs(pcie.get("gen_max"), pcie.get("width_max"))
    check.figure(
        "h2d_gbs", stats["median"], "GB/s", better="higher", spread=stats["spread"], pcie_theoretical_gbs=link
    )
    check.detail("note", "reported only: depends on the slot and on pinned vs pageable host memory")
    check_not_throttled({window.label: window.samples})


# The ladder: each rung adds one change to the one before (cumulative), as in the codelab's advice.
RUNGS = (
    ("baseline", {}),
    ("input pipeline", {"pipeline": True}),
    ("larger batch", {"batch": 256}),
    ("XLA", {"jit": True}),
    ("mixed precision", {"mixed": True}),
    ("steps_per_execution", {"spe": "level"}),
)


def _ladder_data(path: Path | None, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from workloads.data.images import load_idx_dir

    if path is not None:
        ds = load_idx_dir(path)
        return ds.x_train[:n], ds.y_train[:n].astype("int32")
    rng = np.random.default_rng(seed)  # only speed matters here, not what the images show
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype("int32")


def _chunk_timer(chunk: int, marks: list[float]) -> Any:
    import keras

    class ChunkTimer(keras.callbacks.Callback):
        """Appends the wall time after every ``chunk`` steps; reading the loss waits for the device."""

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            if (batch + 1) % chunk == 0:
                float((logs or {}).get("loss", 0.0))
                marks.append(time.perf_counter())

    return ChunkTimer()


def _rung_images_per_s(
    cfg: dict[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    level: Mapping[str, Any],
    device: str,
    seed: int,
    check: CheckRecord | None = None,
) -> list[float]:
    """Training images/s of the workloads' MNIST stage-5 model with one rung's settings, per timed chunk.

    One fit runs 1 + repeats chunks; the first (tracing, compilation, warm-up) is not counted (in `check`'s
    breakdown it is compile, the timed chunks steady).
    """
    import keras

    from workloads.recipes.mnist import build_model, prepare, stage_config

    batch, spe = cfg.get("batch", 64), cfg.get("spe", 1)
    chunk = -(-max(1, level["ladder_images"][device] // batch) // spe) * spe  # a multiple of spe
    total = chunk * (1 + level["repeats"])
    mixed = "mixed_float16" if device == "gpu" else "mixed_bfloat16"
    keras.config.set_dtype_policy(mixed if cfg.get("mixed") else "float32")
    marks: list[float] = []
    try:
        with keras.device(framework_ops.keras_device(device)):
            keras.utils.set_random_seed(seed)
            model = build_model(stage_config(5, batch_size=batch, jit_compile=bool(cfg.get("jit")),
                                             steps_per_execution=spe))  # fmt: skip
            if cfg.get("pipeline") and _has_tf():
                import tensorflow as tf

                auto = tf.data.AUTOTUNE
                data = (
                    tf.data.Dataset.from_tensor_slices((x[..., None], y)).repeat()
                    .map(lambda a, b: (tf.cast(a, tf.float32) / 255.0, b), num_parallel_calls=auto)
                    .batch(batch, drop_remainder=True).prefetch(auto)
                )  # fmt: skip
                fit_args: dict[str, Any] = {"x": data, "steps_per_epoch": total}
            else:
                reps = -(-total * batch // len(x))
                xs, ys = prepare(np.concatenate([x] * reps)[: total * batch]), np.concatenate([y] * reps)
                fit_args = {"x": xs, "y": ys[: total * batch], "batch_size": batch, "shuffle": False}
            marks.append(time.perf_counter())
            model.fit(**fit_args, epochs=1, verbose=0, callbacks=[_chunk_timer(chunk, marks)])
    finally:
        keras.config.set_dtype_policy("float32")
    chunks = [b - a for a, b in itertools.pairwise(marks)]
    if check is not None and chunks:
        check.time("compile", chunks[0])
        check.time("steady", sum(chunks[1:]))
    seconds = chunks[1:]
    if len(seconds) < level["repeats"]:
        raise AssertionError(f"ladder: only {len(seconds)} timed chunks of {chunk} steps were recorded")
    return [chunk * batch / t for t in seconds]


def _has_tf() -> bool:
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def test_training_ladder(
    check: CheckRecord,
    level: Mapping[str, Any],
    device: str,
    seed: int,
    workload_data: tuple[Path | None, str],
    framework_gpu: dict[str, Any],
) -> None:
    started = time.perf_counter()
    x, y = _ladder_data(workload_data[0], level["ladder_train_images"], seed)
    check.time("data", time.perf_counter() - started)
    cfg: dict[str, Any] = {}
    ladder, windows = [], {}
    cpu_baseline = None
    if device == "gpu":
        cpu_baseline = summarize(_rung_images_per_s({}, x, y, level, "cpu", seed, check))
    rungs = level["ladder_rungs"][device]
    for label, change in RUNGS[:rungs]:
        cfg = {**cfg, **change}
        if cfg.get("spe") == "level":
            cfg["spe"] = level["ladder_steps_per_execution"][device]
        started = time.perf_counter()
        with timed_window(
            check, f"ladder: {label}", device == "gpu", framework_gpu.get("index", 0)
        ) as window:
            stats = summarize(_rung_images_per_s(cfg, x, y, level, device, seed, check))
        wall = time.perf_counter() - started
        windows[window.label] = window.samples
        ratio = stats["median"] / cpu_baseline["median"] if cpu_baseline else None
        ladder.append(
            {
                "rung": label,
                "images_per_s": stats["median"],
                "spread": stats["spread"],
                "gpu_cpu_ratio": ratio,
                "valid": not throttle_events(window.samples),
                "wall_s": round(wall, 1),
            }
        )
        check.figure(f"ladder {label}", stats["median"], "images/s", better="higher", spread=stats["spread"])
    if rungs < len(RUNGS):
        check.detail("not run", f"{', '.join(r for r, _ in RUNGS[rungs:])}: compile-dominated on a CPU, "
                     "not run at this level (LEVEL=full runs them)")  # fmt: skip
    check.detail("ladder", ladder)
    check.detail("device", device)
    check.detail("pipeline", "tf.data" if _has_tf() else "NumPy arrays (tf.data needs TensorFlow)")
    if cpu_baseline:
        check.figure("cpu_baseline", cpu_baseline["median"], "images/s")
    from smoke_tests.report import ladder_chart

    started = time.perf_counter()
    check.plot(ladder_chart(ladder, check.out_dir / "ladder.png", device))
    check.time("plots", time.perf_counter() - started)
    check_not_throttled(windows)
