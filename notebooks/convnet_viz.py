# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # What a convnet learns: activations, filter patterns, Grad-CAM
#
# After the chapter on visualizing convnets of "Deep Learning with Python". A small convnet learns digits
# placed at random positions of a larger blank canvas, so that Grad-CAM has something to find: on held-out
# canvases its peak must fall inside the digit (the pointing game). Every cell calls the functions of
# `workloads.recipes.convnet_viz`, the same code as `python -m workloads convnet-viz`; the pass marks come
# from `workloads/harness/thresholds.toml`.

# %% tags=["parameters"]
from workloads import notebook

QUICK = notebook.quick()  # quick: 2,000 images, 6 epochs, 500 test canvases
# A folder of MNIST-format IDX files (e.g. /usr/share/datasets/fashion-mnist); None: Keras downloads MNIST.
DATA = notebook.data_dir()
OUT = notebook.out_dir("convnet_viz")
SEED = 42

# %%
# ruff: noqa: E402 (the backend is chosen before keras is first imported)
notebook.start(SEED)  # the Keras backend (tensorflow or $KERAS_BACKEND), chosen before keras is imported

import numpy as np
from IPython.display import Image, display

from workloads.harness import thresholds
from workloads.harness.run import level
from workloads.recipes import convnet_viz as viz
from workloads.recipes import plots

# %% [markdown]
# ## Data: digits on 56x56 canvases, with the box of each digit

# %%
cfg = viz.VizConfig()
ds = viz.load_data(DATA, cfg, QUICK, seed=SEED)
x, y, _ = viz.make_canvases(ds.x_train, ds.y_train, cfg.canvas, cfg.copies, SEED, cfg.ink_threshold)
test_x, test_y, boxes = viz.make_canvases(ds.x_test, ds.y_test, cfg.canvas, 1, SEED + 1, cfg.ink_threshold)
x_test = viz.prepare(test_x)
print(ds.describe(), f"{len(x)} training canvases, {len(x_test)} test canvases")

# %% [markdown]
# ## The convnet and its training

# %%
model = viz.build_canvas_model(cfg.canvas, len(ds.classes), cfg.learning_rate)
model.summary()

# %%
epochs = viz.epochs_for(cfg, QUICK)
recorder = viz.train(model, viz.prepare(x), y, cfg, epochs)
test_accuracy = float(np.mean(np.argmax(model.predict(x_test, verbose=0), axis=-1) == test_y))
print(f"{epochs} epochs, test accuracy {test_accuracy:.3f}")
display(Image(filename=OUT / plots.training_curves(recorder.history, OUT / "training_curves.png", "canvas")))

# %% [markdown]
# ## 1. Intermediate activations of every ReLU layer for one test canvas

# %%
maps = viz.activations(model, x_test[0])
activation_checks = viz.activation_checks(model, maps)
print({name: c["zero_channel_fraction"] for name, c in activation_checks.items()})
figure = viz.plot_activations(maps, x_test[0], OUT / "activations.png", cfg.channels_shown)
display(Image(filename=OUT / figure))

# %% [markdown]
# ## 2. Filter patterns by gradient ascent in input space

# %%
layer_name = viz.default_filter_layer(model)
channels = int(viz.get_layer(model, layer_name).output.shape[-1])
filters = list(range(min(cfg.filters_shown, channels)))
patterns, start, end = viz.filter_patterns(model, layer_name, filters, cfg.filter_steps, cfg.filter_step_size,
                                           seed=SEED)  # fmt: skip
filter_checks = viz.filter_checks(start, end)
print(f"filter_rise_fraction {filter_checks['filter_rise_fraction']:.2f}")
display(Image(filename=OUT / viz.plot_filters(patterns, filters, layer_name, OUT / "filter_patterns.png")))

# %% [markdown]
# ## 3. Grad-CAM and the pointing game

# %%
heat, _ = viz.grad_cam(model, x_test, None, class_indices=test_y)
game = viz.pointing_game(heat, boxes[:, 4:], (cfg.canvas, cfg.canvas))
print(f"pointing game {game['pointing_game']:.3f} (chance {game['pointing_game_chance']:.3f})")
hits = zip(test_y[:16], game["hits"][:16], strict=True)
titles = [f"{ds.classes[c][:8]} {'hit' if h else 'MISS'}" for c, h in hits]
figure = viz.plot_grad_cam(test_x[:16], heat[:16], OUT / "grad_cam.png", boxes[:16, 4:], titles)
display(Image(filename=OUT / figure))

# %% [markdown]
# ## Against the project's thresholds

# %%
metrics = {
    "test_accuracy": test_accuracy,
    "pointing_game": game["pointing_game"],
    "zero_channel_fraction_max": max(c["zero_channel_fraction"] for c in activation_checks.values()),
    "activation_shape_mismatches": sum(not c["shape_ok"] for c in activation_checks.values()),
    **filter_checks,
}
rules = thresholds.thresholds_for("convnet_viz", "canvas", level(QUICK), ds.name)
verdicts = thresholds.check(metrics, rules)
print(verdicts or f"no threshold for {ds.name} at this level: reported only")
assert all(v["passed"] for v in verdicts.values()), f"threshold not met: {verdicts}"
