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
# # Two moons: the seed recipe
#
# A 10-10-1 network learns scikit-learn's two interleaving half-moons. Every cell calls the functions of
# `workloads.recipes.moons`, the same code as `python -m workloads moons`; the pass mark comes from
# `workloads/harness/thresholds.toml`.

# %% tags=["parameters"]
from workloads import notebook

# KW_QUICK=1 (the notebook tests) picks the quick settings; for moons they are the full recipe.
QUICK = notebook.quick()
OUT = notebook.out_dir("moons")
SEED = 42

# %%
# ruff: noqa: E402 (the backend is chosen before keras is first imported)
notebook.start(SEED)  # the Keras backend (tensorflow or $KERAS_BACKEND), chosen before keras is imported

from IPython.display import Image, display

from workloads.harness import thresholds
from workloads.harness.run import level
from workloads.recipes import moons, plots

# %% [markdown]
# ## Data: 1,000 noisy points, 70 % for training

# %%
cfg = moons.MoonsConfig()
data = moons.load_data(cfg)
x_train, x_test, y_train, y_test = data
print(f"train {x_train.shape}, test {x_test.shape}, hyperparameters: {cfg}")

# %% [markdown]
# ## Model and training

# %%
model = moons.build_model(cfg, steps_per_execution=moons.steps_per_epoch(cfg))
model.summary()

# %%
history: dict = {}
recorder = moons.train(model, data, cfg, history=history, seed=SEED)
print(f"{len(history['loss'])} epochs, final validation accuracy {history['val_accuracy'][-1]:.3f}")

# %% [markdown]
# ## Evaluation against the project's threshold

# %%
metrics = moons.evaluate(model, data)
rules = thresholds.thresholds_for("moons", "default", level(QUICK), "generated")
verdicts = thresholds.check(metrics, rules)
print(metrics)
print(verdicts)
assert all(v["passed"] for v in verdicts.values()), f"threshold not met: {verdicts}"

# %% [markdown]
# ## Figures

# %%
display(Image(filename=OUT / moons.plot_decision_boundary(model, data, OUT / "decision_boundary.png")))
display(Image(filename=OUT / plots.training_curves(history, OUT / "training_curves.png", "moons")))
