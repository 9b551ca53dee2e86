"""moons: the seed recipe, exactly: a 10-10-1 network on scikit-learn's two moons, with its decision boundary.

Fast by construction: each epoch, its 22 steps and its validation, is one compiled call
(workloads/training/fused_fit.py), so the 100 small epochs cost almost no per-step overhead. On PyTorch, which
has no such path here, `fit` runs one execution per epoch with validation in one compiled call.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split

from workloads.harness.run import RunContext
from workloads.recipes import plots
from workloads.recipes.common import with_overrides
from workloads.training import backend, pipeline
from workloads.training.fused_fit import fused_fit
from workloads.training.recorder import EpochValidation, RunRecorder


# --- Hyperparameters (the seed's) ---------------------------------------------------------------------------
@dataclass
class MoonsConfig:
    n_samples: int = 1000
    noise: float = 0.1
    data_seed: int = 42
    test_size: float = 0.3
    hidden_units: int = 10
    learning_rate: float = 0.01
    epochs: int = 100
    batch_size: int = 32
    # Keras's "auto": XLA on JAX and on TensorFlow with a GPU; off for TensorFlow on CPU, where it measurably
    # slows these tiny steps.
    jit_compile: bool | str = "auto"


# --- Data ---------------------------------------------------------------------------------------------------
def load_data(cfg: MoonsConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = make_moons(n_samples=cfg.n_samples, noise=cfg.noise, random_state=cfg.data_seed)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=cfg.test_size, random_state=cfg.data_seed
    )
    return (
        x_train.astype("float32"),
        x_test.astype("float32"),
        y_train.astype("float32"),
        y_test.astype("float32"),
    )


# --- Model --------------------------------------------------------------------------------------------------
def build_model(cfg: MoonsConfig, steps_per_execution: int = 1) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input(shape=(2,)),
            keras.layers.Dense(cfg.hidden_units, activation="relu"),
            keras.layers.Dense(cfg.hidden_units, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=pipeline.steps_per_execution(steps_per_execution),
        jit_compile=cfg.jit_compile,
    )
    return model


# --- Train --------------------------------------------------------------------------------------------------
def steps_per_epoch(cfg: MoonsConfig) -> int:
    return math.ceil(cfg.n_samples * (1 - cfg.test_size) / cfg.batch_size)


def train(
    model: keras.Model,
    data: tuple,
    cfg: MoonsConfig,
    history: dict | None = None,
    verbose: int = 0,
    seed: int | None = None,
) -> RunRecorder:
    """Train with validation every epoch; `history` (if given) is filled as epochs end."""
    x_train, x_test, y_train, y_test = data
    recorder = RunRecorder(batch_size=cfg.batch_size, steps_per_epoch=steps_per_epoch(cfg), history=history)
    fused = fused_fit(
        model,
        x_train,
        y_train,
        batch_size=cfg.batch_size,
        epochs=cfg.epochs,
        validation_data=(x_test, y_test),
        seed=seed or 0,
        callbacks=[recorder],
        verbose=verbose,
    )
    if fused is None:  # PyTorch
        model.fit(
            **pipeline.train_inputs(x_train, y_train, cfg.batch_size, seed=seed),
            epochs=cfg.epochs,
            callbacks=[EpochValidation(x_test, y_test), recorder],
            verbose=verbose,
        )
    recorder.raise_if_diverged()
    return recorder


# --- Evaluate -----------------------------------------------------------------------------------------------
def evaluate(model: keras.Model, data: tuple) -> dict:
    x_train, x_test, y_train, y_test = data
    test_loss, test_acc = model.evaluate(**pipeline.eval_inputs(x_test, y_test, len(x_test)), verbose=0)
    train_loss, train_acc = model.evaluate(**pipeline.eval_inputs(x_train, y_train, len(x_train)), verbose=0)
    return {
        "test_accuracy": float(test_acc),
        "test_loss": float(test_loss),
        "train_accuracy": float(train_acc),
        "train_loss": float(train_loss),
    }


# --- Plot ---------------------------------------------------------------------------------------------------
def plot_decision_boundary(model: keras.Model, data: tuple, path: Path) -> str:
    x_train, x_test, y_train, y_test = data
    x_all = np.concatenate([x_train, x_test])
    (x0, x1), (y0, y1) = x_all.min(0) - 0.5, x_all.max(0) + 0.5
    gx, gy = np.meshgrid(np.linspace(x0, y0, 200), np.linspace(x1, y1, 200))
    grid = np.c_[gx.ravel(), gy.ravel()].astype("float32")
    prob = model.predict(grid, batch_size=len(grid), verbose=0).reshape(gx.shape)
    fig, ax = plots.plt.subplots(figsize=(6, 4.5))
    ax.contourf(gx, gy, prob, levels=20, cmap="RdBu", alpha=0.6)
    ax.contour(gx, gy, prob, levels=[0.5], colors="k", linewidths=1)
    ax.scatter(x_train[:, 0], x_train[:, 1], c=y_train, cmap="RdBu", edgecolors="k", s=14, label="train")
    ax.scatter(
        x_test[:, 0], x_test[:, 1], c=y_test, cmap="RdBu", edgecolors="w", marker="^", s=22, label="test"
    )
    ax.set_title("moons: decision boundary (p = 0.5 in black)")
    ax.legend(loc="lower left")
    return plots.save(fig, path)


# --- The whole run ------------------------------------------------------------------------------------------
def run(ctx: RunContext, cfg: MoonsConfig) -> None:
    record = ctx.record
    record.hyperparameters, record.device = asdict(cfg), backend.device_description()
    ctx.phase("data")
    data = load_data(cfg)
    if ctx.negative_control:  # training labels permuted: nothing to learn
        x_train, x_test, y_train, y_test = data
        data = (x_train, x_test, np.random.default_rng(ctx.seed).permutation(y_train), y_test)
    record.dataset = {
        "name": "generated",
        "source": "sklearn.datasets.make_moons",
        "fallback": False,
        "train_size": len(data[0]),
        "test_size": len(data[1]),
    }
    ctx.phase("train")
    model = build_model(cfg, steps_per_execution=steps_per_epoch(cfg))
    recorder = train(model, data, cfg, history=record.history, verbose=ctx.verbose, seed=ctx.seed)
    record.timings = recorder.timings(ctx.elapsed())
    ctx.phase("evaluate")
    record.metrics = evaluate(model, data)
    ctx.phase("plots")
    record.plots = [
        plot_decision_boundary(model, data, ctx.out_dir / "decision_boundary.png"),
        plots.training_curves(record.history, ctx.out_dir / "training_curves.png", "moons"),
    ]


def main(
    ctx: RunContext,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
) -> int:
    """The seed recipe with the user's overrides (None: the recipe's); the exit code."""
    from workloads.harness.run import execute

    cfg = with_overrides(MoonsConfig, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate)
    return execute(ctx, lambda c: run(c, cfg))
