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
# # MNIST: the codelab ladder, one stage
#
# The codelab "Keras and deep learning without a PhD", stage by stage (1: softmax ... 5: the batch-norm
# convnet). Every cell calls the functions of `workloads.recipes.mnist`, the same code as
# `python -m workloads mnist --stage N`; the pass marks come from `workloads/harness/thresholds.toml`.

# %% tags=["parameters"]
import os

from workloads import notebook

QUICK = notebook.quick()  # quick: a 30,000-image subset and one epoch
STAGE = int(os.environ.get("KW_MNIST_STAGE", "5"))  # 1-5
# A folder of MNIST-format IDX files (e.g. /usr/share/datasets/fashion-mnist); None: Keras downloads MNIST.
DATA = notebook.data_dir()
OUT = notebook.out_dir("mnist")
SEED = 42

# %%
# ruff: noqa: E402 (the backend is chosen before keras is first imported)
notebook.start(SEED)  # the Keras backend (tensorflow or $KERAS_BACKEND), chosen before keras is imported

from IPython.display import Image, display

from workloads.harness import thresholds
from workloads.harness.run import level
from workloads.recipes import mnist, plots

# %% [markdown]
# ## Data

# %%
cfg = mnist.stage_config(STAGE)
ds = mnist.load_data(DATA, QUICK, cfg, seed=SEED)
print(ds.describe())

# %% [markdown]
# ## The stage's model

# %%
epochs = mnist.epochs_for(cfg, len(ds.x_train), QUICK)
lr = mnist.learning_rate(cfg, len(ds.x_train), epochs, QUICK)
model = mnist.build_model(cfg, num_classes=len(ds.classes), lr=lr)
model.summary()

# %% [markdown]
# ## Training (the stage's learning-rate schedule included)

# %%
history: dict = {}
recorder = mnist.train(model, ds, cfg, epochs, seed=SEED, history=history)
print(f"{epochs} epoch(s), validation accuracy per epoch: {history['val_accuracy']}")

# %% [markdown]
# ## Evaluation against the project's threshold

# %%
metrics = mnist.evaluate(model, ds, cfg)
rules = thresholds.thresholds_for("mnist", f"stage{STAGE}", level(QUICK), ds.name)
verdicts = thresholds.check(metrics, rules)
print(metrics)
print(verdicts or f"no threshold for {ds.name} at this level: reported only")
assert all(v["passed"] for v in verdicts.values()), f"threshold not met: {verdicts}"

# %% [markdown]
# ## Figures

# %%
curves = plots.training_curves(history, OUT / "training_curves.png", f"{ds.name}: stage {STAGE}")
display(Image(filename=OUT / curves))
display(Image(filename=OUT / mnist.plot_predictions(model, ds, OUT / "predictions.png")))
