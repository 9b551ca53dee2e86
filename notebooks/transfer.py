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
# # Transfer learning: pretrained features against training from scratch
#
# Keras' `mnist_transfer_cnn` recipe as a check that can fail: a convnet learns classes 0-4; its convolutional
# features, frozen, get a new head for classes 5-9 trained on ONE label per class, then everything is
# fine-tuned at a lower learning rate. The same network trained from scratch on the same images is the
# control. Several draws of the few labels are paired, and transfer must beat scratch on average. Every cell
# calls the functions of `workloads.recipes.transfer_self`, the same code as
# `python -m workloads transfer --base self`; the pass marks come from `workloads/harness/thresholds.toml`.
# (The InceptionV3 recipe on a folder of photos, which needs the ImageNet weights, is
# `python -m workloads transfer --base inception_v3 --data DIR`.)

# %% tags=["parameters"]
from workloads import notebook

QUICK = notebook.quick()  # quick: 6,000 pretraining images, 10 draws
# A folder of MNIST-format IDX files; None: Keras' MNIST (cache or download), else the digits fallback.
DATA = notebook.data_dir()
OUT = notebook.out_dir("transfer")
SEED = 42

# %%
# ruff: noqa: E402 (the backend is chosen before keras is first imported)
notebook.start(SEED)  # the Keras backend (tensorflow or $KERAS_BACKEND), chosen before keras is imported

import numpy as np
from IPython.display import Image, display

from workloads.data import images as data
from workloads.harness import thresholds
from workloads.harness.run import level
from workloads.recipes import transfer_self as ts

# %% [markdown]
# ## Data: classes 0-4 to pretrain, a pool of classes 5-9 to draw the few labels from

# %%
cfg = ts.SelfConfig()
ds = data.load_mnist(DATA)
parts = ts.split_classes(ds, cfg, QUICK, SEED)
print(f"{ds.name}: pretrain {len(parts['pretrain'][0])} images of {ds.classes[:5]}")
print(f"to {ds.classes[5:]}: {cfg.labels_per_class} label(s) per class, {len(parts['test'][0])} test images")

# %% [markdown]
# ## Pretraining on classes 0-4

# %%
model, recorder = ts.pretrain(parts, cfg, QUICK)
model.summary()
metrics = {"pretrain_accuracy": ts.accuracy(model, *parts["pretrain_test"])}
print(metrics)

# %% [markdown]
# ## Draws: a new head on the frozen base, fine-tuning, and the same network from scratch, on the same labels

# %%
trials = ts.FewLabelDraws(model.get_layer("base"), cfg, parts["test"])
rng = np.random.default_rng(SEED)
draws = []
for i in range(ts.draws_for(cfg, QUICK)):
    draws.append(trials.run(*ts.draw_few(parts["pool"], cfg.labels_per_class, rng), rng))
    print(f"draw {i}: {draws[-1]}")
metrics.update(ts.summarize(draws))
display(
    Image(filename=OUT / ts.plot(metrics, OUT / "transfer_vs_scratch.png", ds.name, cfg.labels_per_class))
)

# %% [markdown]
# ## Against the project's thresholds

# %%
rules = thresholds.thresholds_for("transfer", "self", level(QUICK), ds.name)
verdicts = thresholds.check(metrics, rules)
print(verdicts)
assert verdicts and all(v["passed"] for v in verdicts.values()), f"threshold not met: {verdicts}"
