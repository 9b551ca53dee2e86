"""fit for small in-memory datasets with each epoch, its steps and its validation, in one compiled call.

`model.fit` returns to Python after every compiled execution and runs the callbacks, the iterator and the
validation loop around it; on a tiny model (moons: 22 steps of 32 points per epoch) that fixed cost is most
of the time. Here one compiled function runs a whole epoch: the shuffled batches in a loop (the last one
smaller, as fit makes it), the model's own `train_step` (its loss, metrics and optimizer), then `test_step`
on the validation set. Python is entered once per epoch, where the callbacks run as fit runs them, so the
history, the progress line, NaN detection and Ctrl-C behave as with fit.

TensorFlow: a `tf.function`, XLA-compiled when the compiled model's `jit_compile` says so (Keras's "auto":
on a GPU; on a CPU XLA's compile costs more than these steps). JAX: `jax.jit` over the stateless
`train_step` (Keras's guide "Writing a training loop from scratch in JAX"). PyTorch has no such path here:
`fused_fit` returns None and the caller runs `model.fit`.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

Logs = dict[str, float]


def _batches(n: int, batch_size: int) -> tuple[int, int]:
    """(steps, size of the last batch): fit's batching of n samples without drop_remainder."""
    steps = -(-n // batch_size)
    return steps, n - (steps - 1) * batch_size


def _build(model: keras.Model, x: np.ndarray, y: np.ndarray) -> None:
    """Create every variable (compiled loss and metrics, optimizer slots) before tracing, as fit does first:
    a traced function must not create variables. Keras's own symbolic build when it has one (what fit calls;
    nothing is computed), else one eager forward pass (slow on JAX, which compiles each eager op)."""
    symbolic_build = getattr(model, "_symbolic_build", None)
    if symbolic_build is not None:
        symbolic_build(data_batch=(x, y))
    else:
        y_pred = model(x, training=False)
        model.compute_loss(x=x, y=y, y_pred=y_pred)
        model.compute_metrics(x, y, y_pred, sample_weight=None)
    model.optimizer.build(model.trainable_variables)
    model.reset_metrics()


def _tensorflow_epoch(model: keras.Model, data: tuple, batch_size: int) -> Callable[[np.ndarray], tuple]:
    import tensorflow as tf

    x, y, x_val, y_val = (tf.constant(a) for a in data)
    steps, _ = _batches(int(x.shape[0]), batch_size)

    def epoch(order):
        model.reset_metrics()
        full = tf.reshape(order[: (steps - 1) * batch_size], (steps - 1, batch_size))  # static shapes (XLA)

        def step(i):
            model.train_step((tf.gather(x, full[i]), tf.gather(y, full[i])))
            return (i + 1,)

        # A Python loop would be unrolled at trace time: a graph loop traces the step once.
        tf.while_loop(lambda i: i < steps - 1, step, (tf.constant(0),))
        idx = order[(steps - 1) * batch_size :]  # the last batch, full or not
        logs = model.train_step((tf.gather(x, idx), tf.gather(y, idx)))
        model.reset_metrics()
        return logs, model.test_step((x_val, y_val))

    # autograph off: it would also rewrite Keras's own code on every trace (slow, and not needed here).
    compiled = tf.function(epoch, jit_compile=bool(model.jit_compile), autograph=False)
    return lambda order: compiled(tf.constant(order))


def _jax_epoch(model: keras.Model, data: tuple, batch_size: int) -> tuple[Callable, Callable[[], None]]:
    import jax

    x, y, x_val, y_val = (jax.numpy.asarray(a) for a in data)
    steps, _ = _batches(int(x.shape[0]), batch_size)
    fresh_metrics = [v.value for v in model.metrics_variables]

    @jax.jit
    def epoch(state, order):
        def step(i, carry):
            idx = jax.lax.dynamic_slice(order, (i * batch_size,), (batch_size,))
            return model.train_step(carry, (x[idx], y[idx]))[1]

        carry = jax.lax.fori_loop(0, steps - 1, step, (*state, fresh_metrics))
        idx = order[(steps - 1) * batch_size :]
        logs, (trainable, non_trainable, optimizer, _) = model.train_step(carry, (x[idx], y[idx]))
        val_logs, _ = model.test_step((trainable, non_trainable, fresh_metrics), (x_val, y_val))
        return (trainable, non_trainable, optimizer), logs, val_logs

    state = [
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
    ]

    def run(order: np.ndarray) -> tuple:
        new_state, logs, val_logs = epoch(tuple(state), order)
        state[:] = new_state
        return logs, val_logs

    def sync() -> None:
        """Write the trained state back into the model's variables."""
        refs = (model.trainable_variables, model.non_trainable_variables, model.optimizer.variables)
        for variables, values in zip(refs, state, strict=True):
            for variable, value in zip(variables, values, strict=True):
                variable.assign(value)

    return run, sync


def fused_fit(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int,
    epochs: int,
    validation_data: tuple[np.ndarray, np.ndarray],
    seed: int,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int = 0,
) -> keras.callbacks.History | None:
    """`model.fit(x, y, batch_size, epochs, shuffle=True, validation_data=...)` with one compiled call per
    epoch; each epoch a fresh permutation from `seed`. None on a backend without this path (PyTorch)."""
    backend = keras.backend.backend()
    if backend not in ("tensorflow", "jax"):
        return None
    data = (x, y, *validation_data)
    steps, _ = _batches(len(x), batch_size)
    _build(model, x[:batch_size], y[:batch_size])
    sync = None
    if backend == "tensorflow":
        run = _tensorflow_epoch(model, data, batch_size)
    else:
        run, sync = _jax_epoch(model, data, batch_size)
    history = keras.callbacks.History()
    callback_list = keras.callbacks.CallbackList(
        [*(callbacks or []), history],
        add_progbar=verbose != 0,
        verbose=verbose,
        epochs=epochs,
        steps=steps,
        model=model,
    )
    rng = np.random.default_rng(seed)
    model.stop_training = False
    callback_list.on_train_begin()
    try:
        for epoch in range(epochs):
            callback_list.on_epoch_begin(epoch)
            train_logs, val_logs = run(rng.permutation(len(x)).astype("int32"))
            logs: Logs = {name: float(value) for name, value in train_logs.items()}
            callback_list.on_train_batch_end(steps - 1, logs)  # one call ran all the steps
            logs.update({f"val_{name}": float(value) for name, value in val_logs.items()})
            callback_list.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    finally:
        if sync is not None:
            sync()
    callback_list.on_train_end()
    return history
