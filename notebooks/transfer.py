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
# Keras' `mnist_transfer_cnn` recipe: a convnet learns classes 0-4; its convolutional features, frozen, get a
# new head for classes 5-9 trained on only a few labels per class, then everything is fine-tuned at a lower
# learning rate. The same network trained from scratch on the same few labels is the control: transfer must
# beat it. Every cell calls the functions of `workloads.transfer`, the same code as
# `python -m workloads transfer --base self`; the pass marks come from `workloads/thresholds.toml`.
# (The InceptionV3 recipe on a folder of photos, which needs the ImageNet weights, is
# `python -m workloads transfer --data FOLDER`.)

# %% tags=["parameters"]
import os
from pathlib import Path

QUICK = os.environ.get("KW_QUICK", "0") == "1"  # quick: 6,000 pretraining images, 2 epochs
# A folder of MNIST-format IDX files; None: Debian's Fashion-MNIST when installed, else Keras' MNIST.
DATA = Path(os.environ["KW_DATA"]) if os.environ.get("KW_DATA") else None
OUT = Path(os.environ.get("KW_NOTEBOOK_OUT", "runs/notebooks")) / "transfer"
SEED = 42

# %%
# ruff: noqa: E402 (the backend is chosen before keras is first imported)
from workloads.backend import seed_everything, select_backend

print("Keras backend:", select_backend(None))
seed_everything(SEED)

from IPython.display import Image, display

from workloads import thresholds, transfer

OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Data: classes 0-4 to pretrain, a few labels of classes 5-9 to transfer to

# %%
cfg = transfer.SelfConfig()
ds = transfer.load_self_data(DATA)
parts = transfer.split_classes(ds, cfg, QUICK, SEED)
x_few, y_few = parts["few"]
x_test, y_test = parts["test"]
curve = (x_test[: cfg.curve_images], y_test[: cfg.curve_images])  # per-epoch curves; final scores use all
print(f"{ds.name}: pretrain {len(parts['pretrain'][0])} images of {ds.classes[:5]}")
print(f"transfer: {len(x_few)} labelled images of {ds.classes[5:]}, {len(x_test)} test images")

# %% [markdown]
# ## Pretraining on classes 0-4

# %%
history: dict = {}
metrics: dict = {}
model, features = transfer.build_self_model(5)
transfer.compile_model(model, cfg.learning_rate)
model.summary()
transfer.fit(model, *parts["pretrain"], epochs=cfg.quick_pretrain_epochs if QUICK else cfg.pretrain_epochs,
             batch_size=cfg.pretrain_batch_size, history=history, prefix="pretrain")  # fmt: skip
metrics["pretrain_accuracy"] = transfer.accuracy(model, *parts["pretrain_test"])
print(metrics)

# %% [markdown]
# ## Transfer: frozen features and a new head, then fine-tuning everything at a tenth of the rate

# %%
head = transfer.compile_model(transfer.new_head(features, 5), cfg.learning_rate)
transfer.fit(head, x_few, y_few, epochs=cfg.head_epochs, batch_size=cfg.batch_size, history=history,
             prefix="head", validation_data=curve)  # fmt: skip
metrics["head_accuracy"] = transfer.accuracy(head, x_test, y_test)
for layer in features:
    layer.trainable = True
transfer.compile_model(head, cfg.learning_rate * cfg.finetune_factor)
transfer.fit(head, x_few, y_few, epochs=cfg.finetune_epochs, batch_size=cfg.batch_size, history=history,
             prefix="finetune", validation_data=curve)  # fmt: skip
metrics["transfer_accuracy"] = transfer.accuracy(head, x_test, y_test)
print(metrics)

# %% [markdown]
# ## The control: the same network from scratch on the same few labels

# %%
scratch, _ = transfer.build_self_model(5)
transfer.compile_model(scratch, cfg.learning_rate)
transfer.fit(scratch, x_few, y_few, epochs=cfg.head_epochs + cfg.finetune_epochs, batch_size=cfg.batch_size,
             history=history, prefix="scratch", validation_data=curve)  # fmt: skip
metrics["scratch_accuracy"] = transfer.accuracy(scratch, x_test, y_test)
metrics["transfer_margin"] = metrics["transfer_accuracy"] - metrics["scratch_accuracy"]
print(metrics)
display(Image(filename=OUT / transfer.plot_self(history, metrics, OUT / "transfer_vs_scratch.png", ds.name)))

# %% [markdown]
# ## Against the project's thresholds

# %%
rules = thresholds.thresholds_for("transfer", "self", "quick" if QUICK else "full", ds.name)
verdicts = thresholds.check(metrics, rules)
print(verdicts or f"no threshold for {ds.name} at this level: reported only")
assert all(v["passed"] for v in verdicts.values()), f"threshold not met: {verdicts}"
