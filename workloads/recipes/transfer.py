"""transfer: transfer learning, two modes on one pipeline (pretrained base, frozen; new head; fine-tune).

`--base inception_v3`: the "TensorFlow in Practice" recipe in Keras 3. InceptionV3 (no top, 150x150x3) cut at
`mixed7`, frozen; Flatten, Dense(1024, relu), Dropout(0.2), Dense(n classes); images from a folder with one
subfolder per class; augmentation layers equal to the course's ImageDataGenerator. Phase 1 trains the head,
phase 2 fine-tunes the top Inception block (mixed7) at a 10x smaller learning rate with batch norm frozen.

`--base self` (the default, offline): Keras's `mnist_transfer_cnn` as a robust check, in
workloads/recipes/transfer_self.py: pretrain on classes 0-4, new head on one label per class of 5-9,
fine-tune, against scratch on the same labels, over several paired draws.

The image folder (`--data`, else cats_and_dogs_filtered) is read by workloads/data/image_folder.py: bad
folders fail with one line, files that are not images are skipped and counted in result.json, sizes resized.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from workloads.data.image_folder import default_image_folder, image_datasets
from workloads.errors import InputError
from workloads.harness.run import RunContext
from workloads.recipes import plots
from workloads.recipes.common import check_weights, weights_option, with_overrides
from workloads.training import backend
from workloads.training.recorder import RunRecorder


# --- Hyperparameters ----------------------------------------------------------------------------------------
@dataclass
class InceptionConfig:
    """`--base inception_v3`: the course's recipe."""

    image_size: int = 150
    cut_layer: str = "mixed7"
    top_block_after: str = "mixed6"  # fine-tune the layers after this one (the mixed7 block)
    dense_units: int = 1024
    dropout: float = 0.2
    batch_size: int = 20
    learning_rate: float = 1e-4  # the course's RMSprop(0.0001)
    finetune_factor: float = 0.1
    head_epochs: int = 20
    finetune_epochs: int = 10
    quick_head_epochs: int = 1
    quick_finetune_epochs: int = 1
    validation_split: float = 0.2  # when --data has no train/ and validation/ subfolders


# --- Models -------------------------------------------------------------------------------------------------
def augmentation() -> keras.Sequential:
    """The course's ImageDataGenerator as layers: rescale 1/255, rotation 40 degrees, shifts 0.2, zoom 0.2,
    horizontal flip, fill nearest. (Its shear_range=0.2 means 0.2 degrees: a no-op, left out.)

    The random layers act only in training; the rescale always.
    """
    layers = keras.layers
    return keras.Sequential(
        [
            layers.Rescaling(1.0 / 255),
            layers.RandomRotation(40 / 360, fill_mode="nearest"),
            layers.RandomTranslation(0.2, 0.2, fill_mode="nearest"),
            layers.RandomZoom(0.2, fill_mode="nearest"),
            layers.RandomFlip("horizontal"),
        ],
        name="augmentation",
    )


def inception_base(weights: str | Path | None, cfg: InceptionConfig) -> keras.Model:
    """InceptionV3 without top, cut at `cfg.cut_layer`, all frozen. weights: imagenet, a local file, None."""
    check_weights(weights)
    shape = (cfg.image_size, cfg.image_size, 3)
    try:
        full = keras.applications.InceptionV3(include_top=False, weights=weights, input_shape=shape)
    except Exception as exc:  # download failure, wrong or corrupt file
        raise InputError(f"cannot load InceptionV3 weights {weights}: {str(exc)[:200]}") from None
    try:
        cut = full.get_layer(cfg.cut_layer)
    except ValueError:
        raise InputError(f"InceptionV3 has no layer {cfg.cut_layer!r}") from None
    base = keras.Model(full.inputs[0], cut.output, name=f"inception_v3_to_{cfg.cut_layer}")
    base.trainable = False
    return base


def build_inception_model(base: keras.Model, num_classes: int, cfg: InceptionConfig) -> keras.Model:
    layers = keras.layers
    inputs = keras.Input((cfg.image_size, cfg.image_size, 3))
    x = augmentation()(inputs)
    x = base(x, training=False)  # batch norm stays in inference mode, also when fine-tuning
    x = layers.Flatten()(x)
    x = layers.Dense(cfg.dense_units, activation="relu")(x)
    x = layers.Dropout(cfg.dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="inception_transfer")


def unfreeze_top_block(base: keras.Model, after: str) -> int:
    """Make the layers after `after` trainable, batch norm excepted; return the trainable weight count."""
    names = [layer.name for layer in base.layers]
    if after not in names:
        raise InputError(f"the base has no layer {after!r} to fine-tune after")
    start = names.index(after) + 1
    base.trainable = True
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= start and not isinstance(layer, keras.layers.BatchNormalization)
    return sum(int(np.prod(w.shape)) for w in base.trainable_weights)


def compile_model(model: keras.Model, learning_rate: float, optimizer: str = "adam") -> keras.Model:
    opt = (
        keras.optimizers.RMSprop(learning_rate)
        if optimizer == "rmsprop"
        else keras.optimizers.Adam(learning_rate)
    )
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


# --- Train and evaluate -------------------------------------------------------------------------------------
def fit(
    model, x, y=None, *, epochs: int, batch_size: int, history: dict, prefix: str, verbose: int = 0, **kw
):
    """fit with a RunRecorder; its history goes into `history` under `prefix_`."""
    steps = kw.pop("steps", None) or math.ceil(len(x) / batch_size)
    recorder = RunRecorder(batch_size=batch_size, steps_per_epoch=steps)
    if y is None:  # a dataset
        model.fit(x, epochs=epochs, callbacks=[recorder], verbose=verbose, **kw)
    else:
        model.fit(x, y, batch_size=batch_size, epochs=epochs, callbacks=[recorder], verbose=verbose, **kw)
    recorder.raise_if_diverged()
    for key, values in recorder.history.items():
        history[f"{prefix}_{key}"] = values
    return recorder


def accuracy(model: keras.Model, x, y=None) -> float:
    if y is None:
        return float(model.evaluate(x, verbose=0)[1])
    return float(model.evaluate(x, y, batch_size=500, verbose=0)[1])


def run_inception(ctx: RunContext, cfg: InceptionConfig, data_dir: Path | None, weights) -> None:
    """The course's recipe: phase 1 (head), phase 2 (fine-tune mixed7 at lr/10, batch norm frozen)."""
    record = ctx.record
    record.variant, record.device = "inception_v3", backend.device_description()
    ctx.phase("data")
    folder = Path(data_dir) if data_dir is not None else default_image_folder()
    train, val, describe = image_datasets(
        folder,
        image_size=cfg.image_size,
        batch_size=cfg.batch_size,
        validation_split=cfg.validation_split,
        seed=ctx.seed,
        work_dir=ctx.out_dir,
    )
    record.dataset = describe
    head_epochs = cfg.quick_head_epochs if ctx.quick else cfg.head_epochs
    tune_epochs = cfg.quick_finetune_epochs if ctx.quick else cfg.finetune_epochs
    record.hyperparameters = {
        **asdict(cfg),
        "weights": str(weights),
        "epochs_run": [head_epochs, tune_epochs],
    }
    history, metrics = record.history, record.metrics

    ctx.phase("train")
    base = inception_base(weights, cfg)
    model = compile_model(
        build_inception_model(base, len(describe["classes"]), cfg), cfg.learning_rate, "rmsprop"
    )
    metrics["head_trainable_params"] = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    steps = math.ceil(describe["train_size"] / cfg.batch_size)
    rec = fit(model, train, epochs=head_epochs, batch_size=cfg.batch_size, history=history, prefix="phase1",
              validation_data=val, steps=steps, verbose=ctx.verbose)  # fmt: skip
    metrics["phase1_accuracy"] = accuracy(model, val)
    metrics["finetuned_base_params"] = unfreeze_top_block(base, cfg.top_block_after)
    compile_model(model, cfg.learning_rate * cfg.finetune_factor, "rmsprop")
    fit(model, train, epochs=tune_epochs, batch_size=cfg.batch_size, history=history, prefix="phase2",
        validation_data=val, steps=steps, verbose=ctx.verbose)  # fmt: skip
    metrics["phase2_accuracy"] = accuracy(model, val)
    record.timings = {**rec.timings(ctx.elapsed()), "total_s": round(ctx.elapsed(), 3)}
    ctx.phase("plots")
    record.plots.append(plot_phases(history, ctx.out_dir / "phases.png", describe["name"]))


# --- Plot ---------------------------------------------------------------------------------------------------
def plot_phases(history: dict, path: Path, name: str) -> str:
    fig, ax = plots.plt.subplots(figsize=(6, 4))
    offset = 0
    for phase in ("phase1", "phase2"):
        for split, style in (("accuracy", "-"), ("val_accuracy", "--")):
            values = history.get(f"{phase}_{split}", [])
            ax.plot(
                range(offset + 1, offset + len(values) + 1),
                values,
                style,
                marker="o",
                label=f"{phase} {split}",
            )
        offset += len(history.get(f"{phase}_accuracy", []))
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{name}: head (phase 1), then fine-tuning mixed7 (phase 2)")
    return plots.save(fig, path)


# --- The whole run ------------------------------------------------------------------------------------------
def main(
    ctx: RunContext,
    *,
    base: str = "self",
    weights: str | None = None,
    labels_per_class: int | None = None,
    draws: int | None = None,
    data_dir: Path | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
) -> int:
    """`base` "self" (transfer_self) or "inception_v3" (with `weights` as --weights takes them); `epochs`: of
    the first phase (self: pretraining; inception_v3: the new head) at either level. The exit code."""
    from workloads.harness.run import execute

    common = {"batch_size": batch_size, "learning_rate": learning_rate}
    if base == "self":
        if weights is not None:
            raise InputError("--weights is for --base inception_v3")
        from workloads.recipes import transfer_self

        for option, value in (("labels_per_class", labels_per_class), ("draws", draws)):
            if value is not None and value < 1:
                raise InputError(f"--{option.replace('_', '-')} must be at least 1, got {value}")
        cfg = with_overrides(transfer_self.SelfConfig, pretrain_epochs=epochs, draws=draws, quick_draws=draws,
                             labels_per_class=labels_per_class, **common)  # fmt: skip
        return execute(ctx, lambda c: transfer_self.run(c, cfg, data_dir))
    cfg = with_overrides(InceptionConfig, head_epochs=epochs, quick_head_epochs=epochs, **common)
    keras_weights = weights_option(weights)
    return execute(ctx, lambda c: run_inception(c, cfg, data_dir, keras_weights))
