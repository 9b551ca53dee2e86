"""Input pipelines that keep the device fed: tf.data (cached, prefetched) on TensorFlow, arrays elsewhere.

Both return keyword arguments for `model.fit` / `model.evaluate`, so a workload writes one fit call.
"""

from __future__ import annotations

import keras
import numpy as np


def _tf_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, seed: int | None):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def train_inputs(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int | None = None) -> dict:
    """fit() keyword arguments for shuffled training batches."""
    if keras.backend.backend() == "tensorflow":
        # the dataset shuffles itself each epoch; fit's own shuffle flag does not apply to it
        return {"x": _tf_dataset(x, y, batch_size, shuffle=True, seed=seed), "shuffle": False}
    return {"x": x, "y": y, "batch_size": batch_size, "shuffle": True}


def validation_inputs(x: np.ndarray, y: np.ndarray, batch_size: int) -> dict:
    """fit() keyword arguments for validation each epoch, in large batches."""
    if keras.backend.backend() == "tensorflow":
        return {"validation_data": _tf_dataset(x, y, batch_size, shuffle=False, seed=None)}
    return {"validation_data": (x, y), "validation_batch_size": batch_size}


def eval_inputs(x: np.ndarray, y: np.ndarray, batch_size: int) -> dict:
    """evaluate() keyword arguments."""
    if keras.backend.backend() == "tensorflow":
        return {"x": _tf_dataset(x, y, batch_size, shuffle=False, seed=None)}
    return {"x": x, "y": y, "batch_size": batch_size}


def steps_per_execution(steps: int) -> int:
    """Several steps per compiled call on TensorFlow and JAX; Keras's PyTorch backend only allows 1."""
    return 1 if keras.backend.backend() == "torch" else steps
