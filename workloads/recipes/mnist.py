"""mnist: the codelab "Keras and deep learning without a PhD", stages 1-5, and the ladder of all five.

Stages, as the codelab builds them:
  1. Dense(10, softmax), SGD, batch 128                                           (about 92%)
  2. Dense 200-60-10 with relu, Adam                                              (about 97.5%)
  3. Dense 200-100-60-10, dropout 0.25, Adam(0.01), lr 0.01 * 0.6^epoch           (about 97.7%)
  4. Convnet 12k3 / 24k6s2 / 32k6s2, Dense 200, lr 0.01 * 0.6^epoch (+ warm-up)   (about 99.0%)
  5. The convnet with batch norm (no bias, center only, before relu), dropout 0.3,
     batch 64, lr 0.01 * 0.666^epoch, 10 epochs                                   (99.4-99.5%)

Batch norm's moving statistics start at zero (`moving_variance_initializer="zeros"`; Keras starts the
variance at 1). Why (issue 23): the quick run on the real MNIST (30,000 digits, one epoch, 469 steps) scored
0.8645, 0.955, 0.983 and 0.9335 for seeds 0-3, a 12-point spread, yet the same trained weights scored
0.984-0.987 on every seed once each batch-norm layer's statistics were recomputed over the training set: the
network had learned, its inference statistics were wrong. The culprit is the first layer: its pre-activations
have a variance of only 0.008-0.014, while the moving variance still held 0.99^469 = 0.009 of its initial 1,
so it read 1.4-2.1x the true variance and inference saw squashed features (the other layers: within 7%). The
seeds differed only in how small that first variance was. Started at zero, the moving statistics hold
(1 - 0.99^steps) of the recent batch statistics: an error relative to their own size (under 1% after 469
steps), whatever that size. Same seeds, same weights: 0.9865, 0.984, 0.9865 for seeds 0, 1, 3 (momentum 0.9
did as well, but averages fewer batches). Over seeds 0-9 and 42 (`make calibrate`) the quick run now scores
0.9805-0.9915 on the real MNIST, 0.977-0.985 on the 8,000-digit sample (was 0.9225-0.979), 0.861-0.8895 on
Fashion-MNIST (was 0.7935-0.859), 0.9778-0.9972 on the digits fallback (was 0.9472-0.9889). The full recipe
(9,380 steps) is unchanged: 0.99^9380 is nothing.
Not the cause, by the same measurement: the learning-rate decay squeezed into one epoch (the recomputed
statistics gave 0.984-0.987 on every seed with it) and the 2,000-image test subset (all 10,000 test images
gave the same figures within 0.01).

Stage 4 (no batch norm) warms up: its rate rises linearly over the first 20 steps. Why: on the real MNIST's
quick regime (30,000 digits, one epoch, 235 steps) seeds 4 and 6 stayed at chance (0.1075, 0.108) while the
other seeds reached 0.9475-0.9795. Adam at the full 0.01 from the first step blew the loss up within five
steps (seed 4: the running loss 2.30, then 2.84) and the network never left chance. Adam's first steps are its
noisiest (Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", ICLR 2020: warm-up tames
them); with 20 warm-up steps seeds 4 and 6 scored 0.972 and 0.98, and healthy seeds stayed where they were
(seed 0: 0.978 against 0.9795; seed 3: 0.9715 against 0.971). The collapse is in the first steps whatever the
level, so the full recipe warms up too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from workloads.data import images as data
from workloads.errors import InputError
from workloads.harness.run import RunContext, level
from workloads.recipes import plots
from workloads.recipes.common import prepare_images as prepare
from workloads.recipes.common import regime, with_overrides
from workloads.training import backend, pipeline
from workloads.training.backend import seed_everything
from workloads.training.recorder import RunRecorder, load_checkpoint, load_state


# --- Hyperparameters ----------------------------------------------------------------------------------------
@dataclass
class StageConfig:
    stage: int = 5
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 0.01
    lr_decay: float | None = 0.666  # lr = learning_rate * lr_decay ** epoch; None: constant
    # the rate rises linearly over the first steps (0: none): see the module's docstring (stage 4)
    warmup_steps: int = 0
    optimizer: str = "adam"
    # --quick: a subset, and as many epochs as make about `quick_samples` training samples (1 epoch of the
    # 30,000-image subset; 21 of the digits fallback's 1,437 images), with the recipe's whole learning-rate
    # decay compressed into those steps. One epoch at the starting rate (the old quick recipe) ended wherever
    # the last noisy Adam steps left it: 0.67 on the digits for seed 1, 0.94 on MNIST for seed 3.
    quick_train: int = 30_000
    quick_test: int = 2_000
    quick_samples: int = 30_000
    # ... but at most this many epochs: a tiny dataset (one image: 30,000 epochs) would spend the run in
    # per-epoch validation; the digits fallback's 21 stay as calibrated.
    quick_max_epochs: int = 30
    eval_batch_size: int = 1000
    # several steps per compiled call: no per-step Python overhead
    steps_per_execution: int = 32
    jit_compile: bool | str = "auto"


STAGES: dict[int, StageConfig] = {
    1: StageConfig(stage=1, epochs=10, batch_size=128, learning_rate=0.01, lr_decay=None, optimizer="sgd"),
    2: StageConfig(stage=2, epochs=10, batch_size=128, learning_rate=0.001, lr_decay=None),
    3: StageConfig(stage=3, epochs=10, batch_size=128, learning_rate=0.01, lr_decay=0.6),
    4: StageConfig(stage=4, epochs=10, batch_size=128, learning_rate=0.01, lr_decay=0.6, warmup_steps=20),
    5: StageConfig(stage=5, epochs=10, batch_size=64, learning_rate=0.01, lr_decay=0.666),
}


def stage_config(stage: int, **overrides) -> StageConfig:
    if stage not in STAGES:
        raise InputError(f"unknown stage {stage}: the ladder has stages 1-5")
    return with_overrides(STAGES[stage], **overrides)


def saved_config(state: dict, run_dir: Path) -> StageConfig:
    """The recipe a resumed run continues: its stage's, with the overrides the CLI allows (batch size,
    learning rate); a state.json whose config is anything else was edited or damaged, and is refused."""
    config = state["config"]
    stage, batch, rate = config.get("stage"), config.get("batch_size"), config.get("learning_rate")
    if (
        type(stage) is not int
        or stage not in STAGES
        or type(batch) is not int
        or not 1 <= batch <= 1 << 20
        or type(rate) not in (int, float)
        or not 0 < rate < math.inf
    ):
        raise InputError(f"--resume {run_dir}: state.json has a config this program did not write")
    cfg = stage_config(stage, batch_size=batch, learning_rate=float(rate))
    if asdict(cfg) != {**config, "learning_rate": float(rate)} or stage != state["stage"]:
        raise InputError(f"--resume {run_dir}: state.json has a config this program did not write")
    return cfg


# --- Data ---------------------------------------------------------------------------------------------------
def load_data(
    data_dir: Path | None, quick: bool, cfg: StageConfig, seed: int = 0, allow_download: bool = True
) -> data.ImageDataset:
    dataset = data.load_mnist(data_dir, allow_download)
    if quick:
        dataset = data.subset(dataset, cfg.quick_train, cfg.quick_test, seed=seed)
    return dataset


def epochs_for(cfg: StageConfig, train_size: int, quick: bool) -> int:
    """The recipe's epochs; quick: enough epochs to see about `quick_samples` samples (at least one, at most
    `quick_max_epochs`)."""
    if not quick:
        return cfg.epochs
    return min(cfg.quick_max_epochs, max(1, round(cfg.quick_samples / max(1, train_size))))


def quick_regime(cfg: StageConfig, class_counts: list[int]) -> dict:
    """The regime `--quick` takes on a dataset with these training images per class (without loading it)."""
    train_size = min(cfg.quick_train, sum(class_counts))
    return regime(train_size, epochs_for(cfg, train_size, quick=True), cfg.batch_size)


# --- Model --------------------------------------------------------------------------------------------------
def learning_rate(cfg: StageConfig, train_size: int, epochs: int, quick: bool):
    """The codelab's `learning_rate * lr_decay ** epoch` as an optimizer schedule (a checkpoint resumes it).

    Full: a step each epoch, as the codelab's LearningRateScheduler does. Quick: the same decay over the
    recipe's `cfg.epochs` squeezed smoothly into the quick run's steps, so it ends at the same small rate.
    Either way after `cfg.warmup_steps` of linear warm-up, when the recipe has one.
    """
    if cfg.lr_decay is None:
        return cfg.learning_rate
    steps_per_epoch = math.ceil(train_size / cfg.batch_size)
    decay_steps = steps_per_epoch * epochs / cfg.epochs if quick else steps_per_epoch
    schedule = keras.optimizers.schedules.ExponentialDecay(
        cfg.learning_rate, decay_steps=decay_steps, decay_rate=cfg.lr_decay, staircase=not quick
    )
    return Warmup(schedule, cfg.warmup_steps) if cfg.warmup_steps else schedule


@keras.saving.register_keras_serializable(package="workloads")
class Warmup(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule`'s rate times min(1, (step + 1) / steps): Adam's first, noisiest steps taken small."""

    def __init__(self, schedule, steps: int):
        self.schedule = schedule
        self.steps = steps

    def __call__(self, step):
        ramp = keras.ops.minimum(1.0, (keras.ops.cast(step, "float32") + 1.0) / self.steps)
        return self.schedule(step) * ramp

    def get_config(self) -> dict:
        return {"schedule": keras.saving.serialize_keras_object(self.schedule), "steps": self.steps}

    @classmethod
    def from_config(cls, config: dict):
        return cls(keras.saving.deserialize_keras_object(config["schedule"]), config["steps"])


def build_model(cfg: StageConfig, num_classes: int = 10, lr=None) -> keras.Model:
    """The stage's network, compiled; `lr`: a rate or schedule (default: the constant `cfg.learning_rate`)."""
    layers = keras.layers
    if cfg.stage == 1:
        body = [layers.Flatten(), layers.Dense(num_classes, activation="softmax")]
    elif cfg.stage == 2:
        body = [
            layers.Flatten(),
            layers.Dense(200, activation="relu"),
            layers.Dense(60, activation="relu"),
            layers.Dense(num_classes, activation="softmax"),
        ]
    elif cfg.stage == 3:
        body = [layers.Flatten()]
        for units in (200, 100, 60):
            body += [layers.Dense(units, activation="relu"), layers.Dropout(0.25)]
        body += [layers.Dense(num_classes, activation="softmax")]
    elif cfg.stage == 4:
        body = [
            layers.Conv2D(12, 3, padding="same", activation="relu"),
            layers.Conv2D(24, 6, strides=2, padding="same", activation="relu"),
            layers.Conv2D(32, 6, strides=2, padding="same", activation="relu"),
            layers.Flatten(),
            layers.Dense(200, activation="relu"),
            layers.Dense(num_classes, activation="softmax"),
        ]
    else:  # stage 5: batch norm before relu, no bias (BN's center replaces it), no scale (relu makes it moot)
        # moving statistics from zero: see the module's docstring (issue 23)
        norm = {"center": True, "scale": False, "moving_variance_initializer": "zeros"}
        body = []
        for filters, kernel, strides in ((12, 3, 1), (24, 6, 2), (32, 6, 2)):
            body += [
                layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False),
                layers.BatchNormalization(**norm),
                layers.Activation("relu"),
            ]
        body += [
            layers.Flatten(),
            layers.Dense(200, use_bias=False),
            layers.BatchNormalization(**norm),
            layers.Activation("relu"),
            layers.Dropout(0.3),
            layers.Dense(num_classes, activation="softmax"),
        ]
    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), *body], name=f"mnist_stage{cfg.stage}")
    lr = cfg.learning_rate if lr is None else lr
    optimizer = keras.optimizers.SGD(lr) if cfg.optimizer == "sgd" else keras.optimizers.Adam(lr)
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=pipeline.steps_per_execution(cfg.steps_per_execution),
        jit_compile=cfg.jit_compile,
    )
    return model


# --- Train --------------------------------------------------------------------------------------------------
def train(
    model: keras.Model,
    ds: data.ImageDataset,
    cfg: StageConfig,
    epochs: int,
    *,
    seed: int = 0,
    history: dict | None = None,
    checkpoint_dir: Path | None = None,
    state: dict | None = None,
    initial_epoch: int = 0,
    verbose: int = 0,
) -> RunRecorder:
    steps = math.ceil(len(ds.x_train) / cfg.batch_size)
    recorder = RunRecorder(
        batch_size=cfg.batch_size,
        steps_per_epoch=steps,
        checkpoint_dir=checkpoint_dir,
        history=history,
        state=state,
    )
    model.fit(
        **pipeline.train_inputs(prepare(ds.x_train), ds.y_train, cfg.batch_size, seed=seed),
        **pipeline.validation_inputs(prepare(ds.x_test), ds.y_test, cfg.eval_batch_size),
        epochs=epochs,
        initial_epoch=initial_epoch,
        callbacks=[recorder],
        verbose=verbose,
    )
    recorder.raise_if_diverged()
    return recorder


# --- Evaluate -----------------------------------------------------------------------------------------------
def evaluate(model: keras.Model, ds: data.ImageDataset, cfg: StageConfig) -> dict:
    loss, accuracy = model.evaluate(
        **pipeline.eval_inputs(prepare(ds.x_test), ds.y_test, cfg.eval_batch_size), verbose=0
    )
    return {"test_accuracy": float(accuracy), "test_loss": float(loss)}


# --- Plot ---------------------------------------------------------------------------------------------------
def plot_predictions(model: keras.Model, ds: data.ImageDataset, path: Path, count: int = 24) -> str:
    """The first test images with predicted labels; wrong ones in red."""
    images = ds.x_test[:count]
    predicted = np.argmax(model.predict(prepare(images), verbose=0), axis=1)
    fig, axes = plots.plt.subplots(3, count // 3, figsize=(count // 3 * 1.2, 4.2))
    for ax, img, p, t in zip(axes.ravel(), images, predicted, ds.y_test[:count], strict=True):
        ax.imshow(img, cmap="gray_r")
        ax.set_title(ds.classes[p][:9], color="black" if p == t else "red", fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{ds.name}: predictions (red = wrong)")
    return plots.save(fig, path)


def plot_ladder(stage_results: dict[int, dict], path: Path) -> str:
    """Accuracy per stage, and every stage's validation accuracy per epoch."""
    fig, (ax1, ax2) = plots.plt.subplots(1, 2, figsize=(11, 4))
    stages = sorted(stage_results)
    accs = [100 * stage_results[s]["metrics"]["test_accuracy"] for s in stages]
    bars = ax1.bar([f"stage {s}" for s in stages], accs, color="tab:blue")
    ax1.bar_label(bars, fmt="%.2f%%")
    ax1.set_ylim(max(0, min(accs) - 5), 100)
    ax1.set_ylabel("test accuracy (%)")
    ax1.set_title("the codelab ladder")
    for s in stages:
        curve = stage_results[s]["history"].get("val_accuracy", [])
        ax2.plot(range(1, len(curve) + 1), [100 * a for a in curve], marker="o", label=f"stage {s}")
    ax2.set_xlabel("epoch")
    ax2.xaxis.set_major_locator(plots.MaxNLocator(integer=True))
    ax2.set_ylabel("validation accuracy (%)")
    ax2.grid(alpha=0.3)
    ax2.legend()
    return plots.save(fig, path)


# --- The whole run ------------------------------------------------------------------------------------------
def run_stage(
    ctx: RunContext,
    cfg: StageConfig,
    data_dir: Path | None,
    epochs: int | None = None,
    resume: Path | None = None,
) -> None:
    """One stage: data, model (or the checkpoint of an interrupted run), train, evaluate, plot.

    `epochs`: None means the recipe's for the level (`epochs_for`).
    """
    record = ctx.record
    record.variant, record.device = f"stage{cfg.stage}", backend.device_description()
    ctx.phase("data")
    ds = load_data(data_dir, ctx.quick, cfg, seed=ctx.seed, allow_download=ctx.allow_download)
    if ctx.negative_control:
        ds = data.shuffled_labels(ds, ctx.seed)
    record.dataset = ds.describe()
    if epochs is None:
        epochs = epochs_for(cfg, len(ds.x_train), ctx.quick)
    record.hyperparameters = {
        **asdict(cfg),
        "epochs_run": epochs,
        "regime": regime(len(ds.x_train), epochs, cfg.batch_size),
    }
    history = record.history
    state = {
        "stage": cfg.stage,
        "quick": ctx.quick,
        "data": str(data_dir) if data_dir else None,
        "seed": ctx.seed,
        "epochs": epochs,
        "config": asdict(cfg),
    }
    initial_epoch = 0
    ctx.phase("train")
    if resume is not None:
        model, saved = load_checkpoint(resume)
        initial_epoch = saved["epochs_done"]
        history.update(saved["history"])
    else:
        lr = learning_rate(cfg, len(ds.x_train), epochs, ctx.quick)
        model = build_model(cfg, num_classes=len(ds.classes), lr=lr)
    recorder = train(
        model,
        ds,
        cfg,
        epochs,
        seed=ctx.seed,
        history=history,
        state=state,
        checkpoint_dir=ctx.out_dir,
        initial_epoch=initial_epoch,
        verbose=ctx.verbose,
    )
    record.timings = recorder.timings(ctx.elapsed())
    ctx.phase("evaluate")
    record.metrics = evaluate(model, ds, cfg)
    ctx.phase("plots")
    record.plots = [
        plots.training_curves(history, ctx.out_dir / "training_curves.png", f"{ds.name}: stage {cfg.stage}"),
        plot_predictions(model, ds, ctx.out_dir / "predictions.png"),
    ]


def main(
    ctx: RunContext,
    *,
    stage: int = 5,
    ladder: bool = False,
    resume: Path | None = None,
    data_dir: Path | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
) -> int:
    """One stage, the ladder, or `resume` (the folder of an interrupted run, whose own settings it continues
    with); `epochs` None: the recipe's (quick: enough for about `quick_samples` samples). The exit code."""
    from workloads.harness.run import execute

    overrides = {"batch_size": batch_size, "learning_rate": learning_rate}
    if resume is not None:
        saved = load_state(resume)  # settings only: run_stage loads the model
        cfg = saved_config(saved, resume)
        ctx.level, ctx.seed = level(saved["quick"]), saved["seed"]
        saved_data = Path(saved["data"]) if saved["data"] else None
        return execute(ctx, lambda c: run_stage(c, cfg, saved_data, saved["epochs"], resume=resume))
    if ladder:
        return run_ladder(ctx, data_dir, overrides, epochs)
    cfg = stage_config(stage, **overrides)
    return execute(ctx, lambda c: run_stage(c, cfg, data_dir, epochs))


def run_ladder(ctx: RunContext, data_dir: Path | None, overrides: dict, epochs: int | None = None) -> int:
    """All five stages, each in its own sub-folder with its own result.json, then the ladder's result."""
    import json

    from workloads.harness.run import RunContext as Ctx
    from workloads.harness.run import execute
    from workloads.harness.thresholds import thresholds_for

    stage_results, codes = {}, []
    for stage in STAGES:
        sub = Ctx(
            workload="mnist",
            out_dir=ctx.out_dir / f"stage{stage}",
            backend=ctx.backend,
            seed=ctx.seed,
            deterministic=ctx.deterministic,
            level=ctx.level,
            verbose=ctx.verbose,
        )
        sub.out_dir.mkdir(parents=True, exist_ok=True)
        cfg = stage_config(stage, **overrides)
        seed_everything(ctx.seed, ctx.deterministic)  # each stage as if run alone with this seed
        codes.append(execute(sub, lambda c, cfg=cfg: run_stage(c, cfg, data_dir, epochs), summary=False))
        stage_results[stage] = json.loads((sub.out_dir / "result.json").read_text())

    def ladder(c: RunContext) -> None:
        first = stage_results[1]
        record = c.record
        record.variant, record.device, record.dataset = "ladder", first["device"], first["dataset"]
        record.hyperparameters = {f"stage{s}": r["hyperparameters"] for s, r in stage_results.items()}
        record.history = {f"stage{s}": r["history"] for s, r in stage_results.items()}
        record.metrics = {
            f"stage{s}_test_accuracy": r["metrics"].get("test_accuracy") for s, r in stage_results.items()
        }
        # The ladder is judged by each stage's own thresholds.
        record.rules = {
            f"stage{s}_{metric}": rule
            for s in stage_results
            for metric, rule in thresholds_for(
                "mnist", f"stage{s}", c.level, first["dataset"]["name"]
            ).items()
        }
        record.plots = [plot_ladder(stage_results, c.out_dir / "ladder.png")]

    code = execute(ctx, ladder)
    return max([code, *codes])
