"""convnet-viz: what a convnet learns (Chollet, "Deep Learning with Python", chapter on visualizing convnets).

Three techniques, each with a figure and a number that proves it worked:
  1. Intermediate activations of every ReLU layer for one image; check: shapes, fraction of all-zero channels.
  2. Filter patterns by gradient ascent in input space (L2-normalized gradients, 30 steps); check: the mean
     activation of each visualized filter rises from the start image to the end image.
  3. Grad-CAM heatmaps; check: a pointing game. Digits are placed at random positions of a larger blank
     canvas; on held-out canvases the Grad-CAM peak must fall inside the digit's ink box.

Steps are plain functions (`make_canvases`, `build_canvas_model`, `activations`, `filter_patterns`,
`grad_cam`, `pointing_game`, `xception_grad_cam` and the `plot_*`), so notebooks can call them cell by cell.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from workloads.data import images as data
from workloads.errors import InputError
from workloads.harness.run import RunContext, no_timings
from workloads.recipes import plots
from workloads.recipes.common import check_weights, regime, weights_option, with_overrides
from workloads.recipes.common import prepare_images as prepare
from workloads.training import backend
from workloads.training.gradients import value_and_grad
from workloads.training.recorder import RunRecorder


# --- Hyperparameters ----------------------------------------------------------------------------------------
@dataclass
class VizConfig:
    canvas: int = 56  # digits (28x28) placed at random positions of a 56x56 blank canvas
    copies: int = 3  # canvases made from each training image (different positions)
    epochs: int = 8
    quick_epochs: int = 6
    batch_size: int = 64
    learning_rate: float = 0.003
    train_images: int = 20_000  # images taken from the dataset (capped at what exists)
    quick_train_images: int = 2_000
    test_canvases: int = 2_000  # held-out canvases for the pointing game
    quick_test_canvases: int = 500
    ink_threshold: int = 64  # a pixel >= this (of 255) is ink: the digit's box is the box of its ink
    filter_steps: int = 30  # gradient-ascent steps (the book's 30)
    filter_step_size: float = 2.0  # step on the per-image L2-normalized gradient
    filters_shown: int = 16
    channels_shown: int = 16  # channels per layer in the activation grid
    xception_cam_layer: str = "block14_sepconv2_act"  # the book's last convolutional layer of Xception


def epochs_for(cfg: VizConfig, quick: bool) -> int:
    return cfg.quick_epochs if quick else cfg.epochs


def quick_regime(cfg: VizConfig, class_counts: list[int]) -> dict:
    """The regime `--quick` takes on a dataset with these training images per class: canvases of a subset."""
    images = min(cfg.quick_train_images, sum(class_counts))
    return regime(images * cfg.copies, epochs_for(cfg, quick=True), cfg.batch_size)


# --- Data ---------------------------------------------------------------------------------------------------
def load_data(
    data_dir: Path | None,
    cfg: VizConfig,
    quick: bool,
    seed: int = 0,
    allow_download: bool = True,
    shuffle_labels: bool = False,
) -> data.ImageDataset:
    """The digits the canvases are made of: the level's number of training images and test canvases;
    `shuffle_labels` (the negative control) before the subset is taken."""
    ds = data.load_mnist(data_dir, allow_download)
    if shuffle_labels:
        ds = data.shuffled_labels(ds, seed)
    train_n = cfg.quick_train_images if quick else cfg.train_images
    test_n = cfg.quick_test_canvases if quick else cfg.test_canvases
    return data.subset(ds, train_n, test_n, seed=seed)


def ink_box(image: np.ndarray, threshold: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), bottom/right exclusive, of pixels >= threshold (whole image if none)."""
    rows, cols = np.nonzero(image >= threshold)
    if rows.size == 0:
        return 0, 0, image.shape[0], image.shape[1]
    return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1


def make_canvases(
    images: np.ndarray, labels: np.ndarray, canvas: int, copies: int = 1, seed: int = 0, threshold: int = 64
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each image pasted `copies` times at random positions of a blank canvas: (canvases, labels, boxes).

    boxes[i] is (top, left, bottom, right) in canvas coordinates of the ink of the pasted image, followed by
    the same four numbers for the whole pasted image (its 28x28 square).
    """
    n, h, w = images.shape
    if canvas < max(h, w):
        raise InputError(f"canvas {canvas} is smaller than the images ({h}x{w})")
    rng = np.random.default_rng(seed)
    total = n * copies
    out = np.zeros((total, canvas, canvas), dtype=np.uint8)
    boxes = np.zeros((total, 8), dtype=np.int64)
    tops = rng.integers(0, canvas - h + 1, size=total)
    lefts = rng.integers(0, canvas - w + 1, size=total)
    for i in range(total):
        img, top, left = images[i % n], tops[i], lefts[i]
        out[i, top : top + h, left : left + w] = img
        t, lft, b, r = ink_box(img, threshold)
        boxes[i] = (top + t, left + lft, top + b, left + r, top, left, top + h, left + w)
    return out, np.tile(labels, copies), boxes


# --- Model --------------------------------------------------------------------------------------------------
def build_canvas_model(canvas: int, num_classes: int, learning_rate: float) -> keras.Model:
    """A small all-convolutional net ending in global average pooling, so its last maps keep position.

    Convolutions and ReLUs are separate layers (as in Xception), so filter patterns maximize the
    pre-activation like the book does, and activation grids show post-ReLU maps.
    """
    layers = keras.layers
    body = []
    for i, filters in enumerate((16, 32, 32), start=1):
        body += [
            layers.Conv2D(filters, 3, padding="same", name=f"conv{i}"),
            layers.Activation("relu", name=f"relu{i}"),
        ]
        if i < 3:
            body.append(layers.MaxPooling2D(2, name=f"pool{i}"))
    body += [layers.GlobalAveragePooling2D(name="gap"), layers.Dense(num_classes, activation="softmax")]
    model = keras.Sequential([keras.Input(shape=(canvas, canvas, 1)), *body], name="canvas_convnet")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def load_model(path: Path) -> keras.Model:
    """A saved Keras model (for example the MNIST stage-5 checkpoint.keras) with one grey image input."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--model {path}: no such file (a .keras model, or 'xception')")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:
        raise InputError(f"--model {path}: cannot load it as a Keras model ({str(exc)[:150]})") from None
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or shape[-1] != 1 or shape[0] is None or shape[0] != shape[1]:
        raise InputError(
            f"--model {path}: input shape {shape}; convnet-viz needs square grey images (S, S, 1)"
        )
    return model


def get_layer(model: keras.Model, name: str, option: str = "--layer") -> keras.layers.Layer:
    """The layer called `name`, or a one-line error listing the names that exist."""
    names = [layer.name for layer in model.layers]
    if name not in names:
        shown = ", ".join(names[-12:])
        raise InputError(f"{option} {name!r}: no such layer in {model.name} (last layers: {shown})")
    return model.get_layer(name)


def spatial_layers(model: keras.Model, kinds: tuple[type, ...]) -> list[keras.layers.Layer]:
    """Layers of the given kinds whose output is a 4-D feature map (batch, H, W, C)."""
    return [layer for layer in model.layers if isinstance(layer, kinds) and len(layer.output.shape) == 4]


def relu_layers(model: keras.Model) -> list[keras.layers.Layer]:
    found = [
        layer
        for layer in spatial_layers(model, (keras.layers.Activation, keras.layers.ReLU))
        if isinstance(layer, keras.layers.ReLU) or getattr(layer.activation, "__name__", "") == "relu"
    ]
    # convolutions with a built-in relu (Conv2D(..., activation="relu")) count too
    found += [
        layer
        for layer in spatial_layers(model, (keras.layers.Conv2D,))
        if getattr(layer.activation, "__name__", "") == "relu"
    ]
    order = {id(layer): i for i, layer in enumerate(model.layers)}
    return sorted(found, key=lambda layer: order[id(layer)])


def default_filter_layer(model: keras.Model) -> str:
    convs = spatial_layers(model, (keras.layers.Conv2D,))
    if not convs:
        raise InputError(f"{model.name} has no Conv2D layer to visualize")
    return convs[-1].name


def default_cam_layer(model: keras.Model) -> str:
    """The last layer with a 4-D output: the last feature maps before pooling/flattening."""
    maps = [layer for layer in model.layers if len(layer.output.shape) == 4]
    if not maps:
        raise InputError(f"{model.name} has no 4-D feature maps for Grad-CAM")
    return maps[-1].name


# --- Train --------------------------------------------------------------------------------------------------
def train(
    model: keras.Model, x: np.ndarray, y: np.ndarray, cfg: VizConfig, epochs: int, verbose: int = 0
) -> RunRecorder:
    recorder = RunRecorder(batch_size=cfg.batch_size, steps_per_epoch=math.ceil(len(x) / cfg.batch_size))
    model.fit(
        x, y, batch_size=cfg.batch_size, epochs=epochs, shuffle=True, callbacks=[recorder], verbose=verbose
    )
    recorder.raise_if_diverged()
    return recorder


# --- 1. Intermediate activations ----------------------------------------------------------------------------
def activations(model: keras.Model, image: np.ndarray, layer_names: list[str] | None = None) -> dict:
    """Outputs of the ReLU layers (or `layer_names`) for one image (H, W, C): {name: array (h, w, c)}."""
    names = layer_names or [layer.name for layer in relu_layers(model)]
    if not names:
        raise InputError(f"{model.name} has no ReLU feature maps to show")
    outputs = [get_layer(model, n).output for n in names]
    probe = keras.Model(model.inputs[0], outputs)
    maps = probe.predict(image[None], verbose=0)
    maps = maps if isinstance(maps, list | tuple) else [maps]
    return {n: np.asarray(m[0]) for n, m in zip(names, maps, strict=True)}


def activation_checks(model: keras.Model, maps: dict) -> dict:
    """Per layer: the shape the model declares, the shape observed, and the fraction of all-zero channels."""
    report = {}
    for name, act in maps.items():
        expected = [int(d) for d in model.get_layer(name).output.shape[1:]]
        zero = np.all(act == 0, axis=(0, 1))
        report[name] = {
            "expected_shape": expected,
            "shape": list(act.shape),
            "shape_ok": list(act.shape) == expected,
            "zero_channel_fraction": float(zero.mean()),
        }
    return report


# --- 2. Filter patterns -------------------------------------------------------------------------------------
def filter_patterns(
    model: keras.Model,
    layer_name: str,
    filters: list[int],
    steps: int = 30,
    step_size: float = 2.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradient ascent in input space, one image per filter, all filters in one batch.

    Each image i maximizes the mean activation of filter i of `layer_name` (border pixels excluded, as in
    the book); gradients are L2-normalized per image. Returns (images, start means, end means).
    """
    layer = get_layer(model, layer_name)
    feature = keras.Model(model.inputs[0], layer.output)
    channels = int(layer.output.shape[-1])
    bad = [f for f in filters if not 0 <= f < channels]
    if bad:
        raise InputError(f"layer {layer_name!r} has {channels} filters; no filter {bad[0]}")
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.4, 0.6, size=(len(filters), *shape)).astype("float32")
    mask = np.zeros((len(filters), channels), dtype="float32")
    mask[np.arange(len(filters)), filters] = 1.0
    mask = keras.ops.convert_to_tensor(mask)  # a NumPy operand would break PyTorch's autograd

    def per_filter(x):
        act = feature(x, training=False)
        h, w = act.shape[1], act.shape[2]
        crop = act[:, 2 : h - 2, 2 : w - 2, :] if h > 6 and w > 6 else act
        return keras.ops.sum(keras.ops.mean(crop, axis=(1, 2)) * mask, axis=1)

    def objective(x):
        return keras.ops.sum(per_filter(x))

    start = np.asarray(keras.ops.convert_to_numpy(per_filter(images)))
    for _ in range(steps):
        _, grads = value_and_grad(objective, images)
        norms = np.sqrt(np.sum(grads**2, axis=tuple(range(1, grads.ndim)), keepdims=True)) + 1e-8
        images = images + step_size * grads / norms
    end = np.asarray(keras.ops.convert_to_numpy(per_filter(images)))
    return images, start, end


def filter_checks(start: np.ndarray, end: np.ndarray) -> dict:
    """How much each filter's mean activation rose; the ratio end/start where the start is positive."""
    positive = start > 0
    ratios = end[positive] / start[positive]
    return {
        "filter_rise_fraction": float(np.mean(end > start)),
        "filter_activation_ratio_median": float(np.median(ratios)) if ratios.size else None,
        "filter_activation_ratio_min": float(ratios.min()) if ratios.size else None,
        "filter_activation_start": [round(float(v), 5) for v in start],
        "filter_activation_end": [round(float(v), 5) for v in end],
    }


# --- 3. Grad-CAM --------------------------------------------------------------------------------------------
def _split(model: keras.Model, layer_name: str) -> tuple[keras.Model, callable]:
    """(inputs -> feature maps of layer_name, feature maps -> predictions)."""
    layer = get_layer(model, layer_name, "--cam-layer")
    if len(layer.output.shape) != 4:
        raise InputError(f"--cam-layer {layer_name!r}: output {tuple(layer.output.shape)} is not 4-D maps")
    feature = keras.Model(model.inputs[0], layer.output)
    if isinstance(model, keras.Sequential):
        rest = model.layers[model.layers.index(layer) + 1 :]

        def head(maps):
            for later in rest:
                maps = later(maps, training=False)
            return maps

        return feature, head
    sub = keras.Model(layer.output, model.outputs[0])
    return feature, lambda maps: sub(maps, training=False)


def grad_cam(
    model: keras.Model,
    images: np.ndarray,
    layer_name: str | None = None,
    class_indices: np.ndarray | None = None,
    batch_size: int = 250,
) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM maps (N, h, w) in [0, 1] for `images`, for `class_indices` (default: the predicted class).

    The book's recipe: gradient of the class score with respect to the last feature maps, averaged over
    space per channel, weights the maps; ReLU; scaled by its maximum.
    """
    feature, head = _split(model, layer_name or default_cam_layer(model))
    heatmaps, chosen = [], []
    for lo in range(0, len(images), batch_size):
        batch = images[lo : lo + batch_size]
        maps = np.asarray(keras.ops.convert_to_numpy(feature(batch, training=False)))
        if class_indices is None:
            cls = np.argmax(keras.ops.convert_to_numpy(head(maps)), axis=-1)
        else:
            cls = np.asarray(class_indices[lo : lo + batch_size])
        onehot = keras.ops.convert_to_tensor(np.eye(int(model.outputs[0].shape[-1]), dtype="float32")[cls])

        def score(m, onehot=onehot):  # samples are independent: the sum's gradient is per-sample
            return keras.ops.sum(head(m) * onehot)

        _, grads = value_and_grad(score, maps)
        weights = grads.mean(axis=(1, 2), keepdims=True)
        cam = np.maximum((maps * weights).sum(axis=-1), 0.0)
        peak = cam.max(axis=(1, 2), keepdims=True)
        heatmaps.append(np.where(peak > 0, cam / np.where(peak > 0, peak, 1.0), 0.0))
        chosen.append(cls)
    return np.concatenate(heatmaps).astype("float32"), np.concatenate(chosen)


def upsample(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of one heatmap to (height, width)."""
    from PIL import Image

    return np.asarray(Image.fromarray(heatmap.astype("float32")).resize(size[::-1], Image.BILINEAR))


def pointing_game(heatmaps: np.ndarray, boxes: np.ndarray, size: tuple[int, int]) -> dict:
    """Fraction of heatmaps whose peak (upsampled to the canvas) lies inside the object's box.

    `chance` is what a random point would score: the mean box area over the canvas area.
    """
    hits, peaks = [], []
    for heat, (top, left, bottom, right) in zip(heatmaps, boxes, strict=True):
        full = upsample(heat, size)
        y, x = np.unravel_index(int(np.argmax(full)), full.shape)
        peaks.append((int(y), int(x)))
        hits.append(bool(top <= y < bottom and left <= x < right))
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return {
        "pointing_game": float(np.mean(hits)),
        "pointing_game_chance": float(areas.mean() / (size[0] * size[1])),
        "pointing_game_n": len(hits),
        "hits": hits,
        "peaks": peaks,
    }


# --- Xception on a photo (the book's example) ---------------------------------------------------------------
def load_photo(path: Path, size: tuple[int, int]) -> np.ndarray:
    """An RGB photo resized to `size` as float32 (H, W, 3) in 0..255, or a one-line error."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"--image {path}: no such file")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB").resize(size[::-1], Image.BILINEAR), dtype="float32")
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"--image {path}: cannot read it as an image ({exc})") from None


def xception_model(weights: str | Path | None = "imagenet") -> keras.Model:
    """Xception with its ImageNet classifier: `imagenet` (Keras cache or download), a local file, or None."""
    check_weights(weights)
    try:
        return keras.applications.Xception(weights=weights)
    except Exception as exc:  # download failure, wrong file
        raise InputError(f"cannot load Xception weights {weights}: {str(exc)[:200]}") from None


def class_label(preds: np.ndarray, top: int) -> str:
    """ImageNet's name of class `top` with its probability; the class index, with a warning that says why,
    when imagenet_class_index.json is neither in the Keras cache nor downloadable, or unreadable."""
    try:
        (_, name, prob), *_ = keras.applications.xception.decode_predictions(preds, top=1)[0]
    # Keras's get_file raises a bare Exception for a failed download; ValueError, OSError: a bad file
    except Exception as exc:
        print(f"warning: no ImageNet class names ({str(exc)[:150]}); the label is the class index")
        return f"class {top}"
    return f"{name} ({prob:.1%})"


def xception_grad_cam(
    image_path: Path, weights: str | Path | None = "imagenet", layer_name: str | None = None
) -> dict:
    """The book's Grad-CAM on a photo: Xception's top class, its heatmap, and the photo to overlay it on."""
    cfg = VizConfig()
    photo = load_photo(image_path, (299, 299))
    model = xception_model(weights)
    x = keras.applications.xception.preprocess_input(photo[None].copy())
    preds = np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))
    top = int(np.argmax(preds[0]))
    heat, _ = grad_cam(model, x, layer_name or cfg.xception_cam_layer, np.array([top]))
    label = class_label(preds, top) if weights is not None else f"class {top}"
    return {
        "photo": photo,
        "heatmap": heat[0],
        "class_index": top,
        "label": label,
        "probability": preds[0, top],
    }


# --- Plot ---------------------------------------------------------------------------------------------------
def plot_activations(maps: dict, image: np.ndarray, path: Path, per_layer: int = 16) -> str:
    """One row per layer: the input, then the first channels of that layer's output."""
    fig, axes = plots.plt.subplots(len(maps), per_layer + 1, figsize=(1.1 * (per_layer + 1), 1.2 * len(maps)))
    axes = np.atleast_2d(axes)
    for row, (name, act) in zip(axes, maps.items(), strict=True):
        row[0].imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray_r")
        row[0].set_title(name, fontsize=7)
        for c, ax in enumerate(row[1:]):
            if c < act.shape[-1]:
                ax.imshow(act[..., c], cmap="viridis")
            ax.axis("off")
        row[0].axis("off")
    fig.suptitle("intermediate activations (first channels per layer)")
    return plots.save(fig, path)


def plot_filters(images: np.ndarray, filters: list[int], layer_name: str, path: Path) -> str:
    """The patterns, each normalized for display (the book's deprocessing: centre, scale, clip)."""
    cols = min(8, len(filters))
    rows = math.ceil(len(filters) / cols)
    fig, axes = plots.plt.subplots(rows, cols, figsize=(1.4 * cols, 1.5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, f in zip(axes.ravel(), images, filters, strict=False):
        img = img - img.mean()
        img = np.clip(img / (img.std() + 1e-5) * 0.15 + 0.5, 0, 1)
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray")
        ax.set_title(f"filter {f}", fontsize=7)
    fig.suptitle(f"filter patterns of {layer_name} (gradient ascent)")
    return plots.save(fig, path)


def plot_grad_cam(
    images: np.ndarray,
    heatmaps: np.ndarray,
    path: Path,
    boxes: np.ndarray | None = None,
    titles: list[str] | None = None,
) -> str:
    """Heatmaps over their images (jet, alpha 0.4 as in the book), with the object's box and the peak."""
    count = len(images)
    cols = min(8, count)
    rows = math.ceil(count / cols)
    fig, axes = plots.plt.subplots(rows, cols, figsize=(2.0 * cols, 2.1 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (ax, img, heat) in enumerate(zip(axes.ravel(), images, heatmaps, strict=False)):
        size = img.shape[:2]
        full = upsample(heat, size)
        grey = img.ndim == 2 or img.shape[-1] == 1
        ax.imshow(img.squeeze() if grey else img.astype("uint8"), cmap="gray_r" if grey else None)
        ax.imshow(full, cmap="jet", alpha=0.4)
        y, x = np.unravel_index(int(np.argmax(full)), full.shape)
        ax.plot(x, y, "w+", markersize=10, markeredgewidth=2)
        if boxes is not None:
            top, left, bottom, right = boxes[i]
            ax.add_patch(
                plots.plt.Rectangle(
                    (left - 0.5, top - 0.5), right - left, bottom - top, fill=False, ec="lime", lw=1.2
                )
            )
        if titles:
            ax.set_title(titles[i], fontsize=8)
    fig.suptitle("Grad-CAM (+ = peak, green = the object's box)")
    return plots.save(fig, path)


# --- The whole run ------------------------------------------------------------------------------------------
def visualize(
    ctx: RunContext,
    model: keras.Model,
    sample: np.ndarray,
    cfg: VizConfig,
    layer_name: str | None,
) -> dict:
    """Techniques 1 and 2 on any grey convnet: figures and their metrics."""
    maps = activations(model, sample)
    checks = activation_checks(model, maps)
    layer_name = layer_name or default_filter_layer(model)
    channels = int(get_layer(model, layer_name).output.shape[-1])
    filters = list(range(min(cfg.filters_shown, channels)))
    images, start, end = filter_patterns(
        model, layer_name, filters, cfg.filter_steps, cfg.filter_step_size, seed=ctx.seed
    )
    ctx.phase("plots")
    ctx.record.plots += [
        plot_activations(maps, sample, ctx.out_dir / "activations.png", cfg.channels_shown),
        plot_filters(images, filters, layer_name, ctx.out_dir / "filter_patterns.png"),
    ]
    ctx.phase("evaluate")
    return {
        "activation_layers": checks,
        "activation_shapes_ok": all(c["shape_ok"] for c in checks.values()),
        "activation_shape_mismatches": sum(not c["shape_ok"] for c in checks.values()),
        "zero_channel_fraction_max": max(c["zero_channel_fraction"] for c in checks.values()),
        "filter_layer": layer_name,
        **filter_checks(start, end),
    }


def check_layers(model: keras.Model, layer: str | None, cam_layer: str | None) -> None:
    """Fail on a wrong --layer or --cam-layer name before training, not after."""
    for name, option in ((layer, "--layer"), (cam_layer, "--cam-layer")):
        if name is not None:
            get_layer(model, name, option)


def train_canvas_model(
    ctx: RunContext,
    cfg: VizConfig,
    ds: data.ImageDataset,
    epochs: int,
    layer: str | None,
    cam_layer: str | None,
) -> tuple[keras.Model, RunRecorder]:
    """The canvas convnet trained on digits pasted into larger canvases, saved as `model.keras`."""
    x, y, _ = make_canvases(ds.x_train, ds.y_train, cfg.canvas, cfg.copies, ctx.seed, cfg.ink_threshold)
    ctx.record.hyperparameters["regime"] = regime(len(x), epochs, cfg.batch_size)
    ctx.phase("train")
    model = build_canvas_model(cfg.canvas, len(ds.classes), cfg.learning_rate)
    check_layers(model, layer, cam_layer)
    recorder = train(model, prepare(x), y, cfg, epochs, verbose=ctx.verbose)
    model.save(ctx.out_dir / "model.keras")
    return model, recorder


def evaluate(
    ctx: RunContext,
    cfg: VizConfig,
    ds: data.ImageDataset,
    model: keras.Model,
    layer: str | None,
    cam_layer: str | None,
) -> None:
    """The three techniques and the pointing game on held-out images at the model's size (canvases when it is
    larger than the images); the metrics and the plots go in the record."""
    size = int(model.inputs[0].shape[1])
    ctx.phase("evaluate")
    test_x, test_y, boxes = make_canvases(ds.x_test, ds.y_test, size, 1, ctx.seed + 1, cfg.ink_threshold)
    x_test = prepare(test_x)
    preds = np.argmax(model.predict(x_test, verbose=0), axis=-1)
    metrics = {"test_accuracy": float(np.mean(preds == test_y))}
    metrics.update(visualize(ctx, model, x_test[0], cfg, layer))

    heat, _ = grad_cam(model, x_test, cam_layer, class_indices=test_y)
    # the digit's box: the square it was pasted into (judged); its ink box (stricter, reported)
    game = pointing_game(heat, boxes[:, 4:], (size, size))
    ink = pointing_game(heat, boxes[:, :4], (size, size))
    if size > ds.x_test.shape[1]:  # on un-padded 28x28 images the box is the whole image: no test
        metrics.update({k: v for k, v in game.items() if k.startswith("pointing_game")})
        metrics.update(
            pointing_game_ink=ink["pointing_game"], pointing_game_ink_chance=ink["pointing_game_chance"]
        )
    ctx.phase("plots")
    titles = [
        f"{ds.classes[c][:8]} {'hit' if h else 'MISS'}"
        for c, h in zip(test_y[:16], game["hits"][:16], strict=True)
    ]
    ctx.record.plots.append(
        plot_grad_cam(test_x[:16], heat[:16], ctx.out_dir / "grad_cam.png", boxes[:16, 4:], titles)
    )
    ctx.record.metrics = metrics


def run(
    ctx: RunContext,
    cfg: VizConfig,
    data_dir: Path | None,
    model_path: Path | None = None,
    layer: str | None = None,
    cam_layer: str | None = None,
) -> None:
    """Data, model (trained on canvases, or the saved `model_path`), the three techniques, the pointing game;
    `layer`/`cam_layer` None: the last Conv2D / the last feature maps."""
    record = ctx.record
    record.device = backend.device_description()
    ctx.phase("data")
    ds = load_data(data_dir, cfg, ctx.quick, ctx.seed, ctx.allow_download, ctx.negative_control)
    record.dataset = {**ds.describe(), "canvas": cfg.canvas}
    epochs = epochs_for(cfg, ctx.quick)
    record.hyperparameters = {**asdict(cfg), "epochs_run": epochs}
    if model_path:
        record.variant, recorder = "loaded", None
        model = load_model(model_path)
        check_layers(model, layer, cam_layer)
    else:
        record.variant = "canvas"
        model, recorder = train_canvas_model(ctx, cfg, ds, epochs, layer, cam_layer)
        record.history = recorder.history
    try:
        evaluate(ctx, cfg, ds, model, layer, cam_layer)
    finally:  # set once, also when a later step fails or is interrupted: the training's figures are kept
        record.timings = recorder.timings(ctx.elapsed()) if recorder else no_timings(ctx.elapsed())


def run_xception(ctx: RunContext, image: Path, weights: str | None, cam_layer: str | None) -> None:
    """`--model xception --image FILE`: the book's Grad-CAM on a photo (reported, no thresholds)."""
    record = ctx.record
    record.variant, record.device = "xception", backend.device_description()
    record.dataset = {
        "name": "photo",
        "source": str(image),
        "fallback": False,
        "train_size": 0,
        "test_size": 1,
    }
    record.hyperparameters = {"weights": str(weights), "cam_layer": cam_layer or VizConfig.xception_cam_layer}
    out = xception_grad_cam(image, weights, cam_layer)
    record.metrics = {
        "class_index": out["class_index"],
        "label": out["label"],
        "probability": float(out["probability"]),
    }
    record.plots.append(
        plot_grad_cam(
            out["photo"][None], out["heatmap"][None], ctx.out_dir / "grad_cam.png", titles=[out["label"]]
        )
    )
    record.timings = no_timings(ctx.elapsed())


def main(
    ctx: RunContext,
    *,
    model: str | Path | None = None,
    image: Path | None = None,
    weights: str | None = None,
    layer: str | None = None,
    cam_layer: str | None = None,
    data_dir: Path | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
) -> int:
    """The canvas convnet (default), a saved model (`model` a path), or `model="xception"` on `image` with
    `weights` as --weights takes them; `epochs` at either level (None: the recipe's). The exit code."""
    from workloads.harness.run import execute

    cfg = with_overrides(
        VizConfig, epochs=epochs, quick_epochs=epochs, batch_size=batch_size, learning_rate=learning_rate
    )
    if model is not None and str(model) == "xception":
        if image is None:
            raise InputError("--model xception needs --image FILE (a photo)")
        keras_weights = weights_option(weights)
        load_photo(image, (299, 299))  # fail on a bad photo before building the model
        return execute(ctx, lambda c: run_xception(c, image, keras_weights, cam_layer))
    if image is not None:
        raise InputError("--image is for --model xception")
    return execute(ctx, lambda c: run(c, cfg, data_dir, model, layer, cam_layer))
