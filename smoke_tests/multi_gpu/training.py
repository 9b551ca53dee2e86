"""Data-parallel training of the MNIST stage-5 recipe (workloads/recipes/mnist.py, used as it is) over every
device with keras.distribution.DataParallel on JAX: XLA splits each batch across the devices and all-reduces
the gradients (NCCL on GPUs). Three measurements:

1. the first steps' losses against one device with the same seed and the same batches, per step, in float32
   at XLA's highest matmul precision (no TF32 rounding on either side): see TOLERANCE;
2. the recipe's own run at the level (its data subset, epochs, schedule and global batch) on all devices:
   its test accuracy is judged by workloads/harness/thresholds.toml, the one-device workload's pass mark;
3. the scaling: images/s of the recipe as it is (its global batch) on N devices against one device, after a
   warm-up execution (strong scaling: a small model at batch 64 scales poorly, by design of the recipe):
   reported, not judged.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

# Relative difference allowed between the one-device and the N-device loss at each of the first steps
# (COMPARED_STEPS). Same weights, same batches, same dropout masks (JAX's partitionable PRNG), float32 at
# XLA's highest precision on both sides: only the order of the floating-point sums differs (the batch
# statistics, the gradient all-reduce, and on GPUs the convolution algorithm cuDNN picks for each batch size).
# Measured with 4 simulated devices: 1.6e-7 and 5.3e-7 at steps 1 and 2, then 1.2e-4 at step 3: Adam at the
# recipe's rate 0.01 amplifies the rounding about tenfold per step (9e-3 by step 8), so two steps are
# compared, with a tolerance three orders of magnitude above the rounding. A device that trains on another
# device's shard (--fault duplicate_shard, 2 devices, the digits) differed by 1.2e-3 at step 1, where the
# untrained model scores every image alike, and by 2.2e-2 at step 2: the wrong gradient shows there, twenty
# times the tolerance.
TOLERANCE = 1e-3
COMPARED_STEPS = 2


def _loss_per_step(marks: list[float]) -> list[float]:
    """Keras logs the running mean of the epoch's losses after each step; the step's own loss from it."""
    means = np.asarray(marks, dtype=np.float64)
    k = np.arange(1, len(means) + 1)
    return (k * means - (k - 1) * np.concatenate([[0.0], means[:-1]])).tolist()


def _recorder(marks: list[float], times: list[float]) -> Any:
    import keras

    class Marks(keras.callbacks.Callback):
        """After each execution (steps_per_execution steps): the logged loss and the wall time."""

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            marks.append(float((logs or {}).get("loss", math.nan)))  # reading it waits for the devices
            times.append(time.perf_counter())

    return Marks()


def _distribution(devices: list[Any] | None) -> None:
    import keras

    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices) if devices else None)


def first_steps(ctx: Any, ds: Any, batch: int, duplicate_shard: bool) -> dict[str, Any]:
    """The per-step losses of one device and of all, from the same seed on the same batches."""
    import jax

    from workloads.recipes import mnist
    from workloads.training.backend import seed_everything

    n = len(ctx.devices)
    x = mnist.prepare(ds.x_train[: COMPARED_STEPS * batch])
    y = ds.y_train[: COMPARED_STEPS * batch]
    cfg = mnist.stage_config(5, batch_size=batch, steps_per_execution=1)
    losses = {}
    for label, devices in (("one_device", None), ("all_devices", ctx.devices)):
        xs, ys = x, y
        if devices and duplicate_shard:  # the negative control: device 1 trains on device 0's shard
            shard = batch // n
            xs, ys = (
                xs.reshape(COMPARED_STEPS, n, shard, *xs.shape[1:]).copy(),
                ys.reshape(COMPARED_STEPS, n, shard),
            )
            xs[:, 1], ys = xs[:, 0], ys.copy()
            ys[:, 1] = ys[:, 0]
            xs, ys = xs.reshape(x.shape), ys.reshape(y.shape)
        _distribution(devices)
        seed_everything(ctx.seed)
        marks: list[float] = []
        with jax.default_matmul_precision("highest"):
            model = mnist.build_model(
                cfg, len(ds.classes), mnist.learning_rate(cfg, len(ds.x_train), 1, True)
            )
            model.fit(
                xs, ys, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=[_recorder(marks, [])]
            )
        losses[label] = _loss_per_step(marks)
    _distribution(None)
    one, many = np.asarray(losses["one_device"]), np.asarray(losses["all_devices"])
    relative = (np.abs(one - many) / np.maximum(np.abs(one), 1e-12)).tolist()
    return {**losses, "relative_difference": relative, "tolerance": TOLERANCE, "steps": COMPARED_STEPS}


def recipe_run(ctx: Any, ds: Any, batch: int, quick: bool) -> tuple[dict[str, Any], Any]:
    """The recipe at the level on all devices, judged by its calibrated thresholds; and the trained model."""
    from workloads.harness import thresholds
    from workloads.recipes import mnist
    from workloads.training.backend import seed_everything

    n = len(ctx.devices)
    cfg = mnist.stage_config(5, batch_size=batch)
    cfg = mnist.stage_config(
        5, batch_size=batch, eval_batch_size=cfg.eval_batch_size - cfg.eval_batch_size % n
    )
    epochs = mnist.epochs_for(cfg, len(ds.x_train), quick)
    _distribution(ctx.devices)
    seed_everything(ctx.seed)
    started = time.perf_counter()
    model = mnist.build_model(cfg, len(ds.classes), mnist.learning_rate(cfg, len(ds.x_train), epochs, quick))
    recorder = mnist.train(model, ds, cfg, epochs, seed=ctx.seed)
    metrics = mnist.evaluate(model, ds, cfg)
    level = "quick" if quick else "full"
    rules = thresholds.thresholds_for("mnist", "stage5", level, ds.name)
    run = {
        "metrics": metrics,
        "thresholds": thresholds.check(metrics, rules),
        "threshold_source": f"workloads/harness/thresholds.toml [mnist.stage5.{level}] {ds.name}",
        "epochs": epochs,
        "history": recorder.history,
        "timings": recorder.timings(time.perf_counter() - started),
    }
    return run, model


def images_per_s(ctx: Any, ds: Any, model: Any, batch: int) -> float:
    """Training images/s of `model` (compiled with the recipe's steps per execution) at `batch`, timed over
    executions after a warm-up execution; under the distribution the model was built with."""
    spe, timed = model.steps_per_execution, ctx.setting("scaling_executions")
    count = (1 + timed) * spe * batch
    reps = -(-count // len(ds.x_train))
    from workloads.recipes import mnist

    x = mnist.prepare(np.concatenate([ds.x_train] * reps)[:count])
    y = np.concatenate([ds.y_train] * reps)[:count]
    marks: list[float] = []
    times: list[float] = []
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=[_recorder(marks, times)])
    return timed * spe * batch / (times[-1] - times[0])


def one_device_images_per_s(ctx: Any, ds: Any, batch: int) -> float:
    from workloads.recipes import mnist
    from workloads.training.backend import seed_everything

    _distribution(None)
    seed_everything(ctx.seed)
    return images_per_s(
        ctx, ds, mnist.build_model(mnist.stage_config(5, batch_size=batch), len(ds.classes)), batch
    )


def split_evenly(ds: Any, batch: int, eval_batch: int, n: int) -> Any:
    """Every batch, the last one included, must split evenly across the n devices: drop the few images that
    would not (none at 2, 4 or 8 devices with the recipe's sizes)."""
    import dataclasses

    train = len(ds.x_train) - len(ds.x_train) % batch % n
    test = len(ds.x_test) - len(ds.x_test) % eval_batch % n
    return dataclasses.replace(ds, x_train=ds.x_train[:train], y_train=ds.y_train[:train],
                               x_test=ds.x_test[:test], y_test=ds.y_test[:test])  # fmt: skip


def data_parallel(ctx: Any) -> dict[str, Any]:
    from smoke_tests.settings import level_settings
    from workloads.recipes import mnist

    n = len(ctx.devices)
    quick = "--quick" in level_settings(ctx.level)["workload_args"]
    recipe = mnist.stage_config(5)
    batch = -(-recipe.batch_size // n) * n  # the recipe's global batch, split evenly across the devices
    ds = mnist.load_data(ctx.data, quick, recipe, seed=ctx.seed)
    notes = []
    if batch != recipe.batch_size:
        notes.append(
            f"global batch {batch} (the recipe's {recipe.batch_size} does not split over {n} devices)"
        )
    ds = split_evenly(ds, batch, recipe.eval_batch_size - recipe.eval_batch_size % n, n)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    compared = first_steps(ctx, ds, batch, ctx.faults.duplicate_shard)
    timings["first_steps_s"] = time.perf_counter() - started
    started = time.perf_counter()
    run, model = recipe_run(ctx, ds, batch, quick)
    timings["recipe_s"] = time.perf_counter() - started
    started = time.perf_counter()
    many = images_per_s(ctx, ds, model, batch)  # its train step is compiled already
    one = one_device_images_per_s(ctx, ds, batch)
    timings["scaling_s"] = time.perf_counter() - started
    return {
        "status": "ok",
        "devices": n,
        "global_batch": batch,
        "dataset": ds.describe(),
        "first_steps": compared,
        "recipe": run,
        "scaling": {
            "images_per_s_one": one,
            "images_per_s_all": many,
            "speedup": many / one,
            "efficiency": many / one / n,
            "global_batch": batch,
            "steps_per_execution": model.steps_per_execution,
        },
        "notes": notes,
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }
