"""What every training shares: timing, history kept as it grows, atomic checkpoints, and NaN detection."""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import keras

from workloads.atomic import atomic_write, write_json
from workloads.errors import DivergedError

CHECKPOINT = "checkpoint.keras"
# A checkpoint being saved: written whole beside the last one, then named in state.json (its sha256: the
# commit point), then renamed over it. A run stopped between those steps (a kill, a full disk, Ctrl-C) is
# finished by --resume (settle_checkpoint), so the model and the state it resumes with always agree.
NEXT_CHECKPOINT = "checkpoint.next.keras"
STATE = "state.json"


def progress_verbosity() -> int:
    """Keras's progress bar on a terminal; one line per epoch in logs (CI, files)."""
    return 1 if sys.stdout.isatty() else 2


class RunRecorder(keras.callbacks.Callback):
    """Records per-epoch history and timings; optionally checkpoints atomically; stops on a NaN loss.

    `history` is filled as epochs end, so an interrupted run still has everything up to its last epoch.
    """

    def __init__(
        self,
        batch_size: int,
        steps_per_epoch: int,
        checkpoint_dir: Path | None = None,
        checkpoint_every_s: float = 10.0,
        history: dict | None = None,
        state: dict | None = None,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every_s = checkpoint_every_s
        self.history: dict[str, list] = history if history is not None else {}
        self.state = state if state is not None else {}
        self.epoch_seconds: list[float] = []
        self.steady_ms: list[float] = []
        self._last_save = -math.inf
        self.diverged_at: int | None = None
        self.compile_s: float | None = None

    def on_train_begin(self, logs=None):
        self._train_start = time.perf_counter()
        self._epoch_start = self._train_start

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter() if self.epoch_seconds else self._train_start
        self._batch_marks: list[tuple[int, float]] = []

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self.compile_s is None:  # the first compiled call of the first fit returned: tracing, compiling
            self.compile_s = now - self._train_start
        self._batch_marks.append((batch, now))
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged_at = len(self.epoch_seconds) + 1
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        self.epoch_seconds.append(now - self._epoch_start)
        marks = self._batch_marks
        if len(marks) >= 2:  # time between the first and last execution of this epoch: no compile, no eval
            (b0, t0), (b1, t1) = marks[0], marks[-1]
            if b1 > b0:
                self.steady_ms.append(1000 * (t1 - t0) / (b1 - b0))
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.history.setdefault("epoch_seconds", []).append(round(self.epoch_seconds[-1], 4))
        if self.checkpoint_dir is not None and (now - self._last_save >= self.checkpoint_every_s):
            self.save_checkpoint(epoch + 1)
            self._last_save = time.perf_counter()

    def save_checkpoint(self, epochs_done: int) -> None:
        """model + history, each written atomically and committed together (NEXT_CHECKPOINT), so Ctrl-C or a
        full disk never leaves a broken checkpoint, nor one that is out of step with its state."""
        folder = self.checkpoint_dir
        atomic_write(folder / NEXT_CHECKPOINT, lambda tmp: self.model.save(tmp))
        digest = file_sha256(folder / NEXT_CHECKPOINT)
        state = {**self.state, "epochs_done": epochs_done, "history": self.history}
        write_json(folder / STATE, {**state, "checkpoint_sha256": digest})  # the commit point
        os.replace(folder / NEXT_CHECKPOINT, folder / CHECKPOINT)

    def timings(self, total_s: float) -> dict:
        """first epoch (with compilation), the first compiled call (compile_s: tracing, compilation and that
        call), steady-state ms/step (later epochs), samples/s."""
        steady = None
        if len(self.epoch_seconds) >= 2:
            steady = statistics.median(1000 * s / self.steps_per_epoch for s in self.epoch_seconds[1:])
            if self.steady_ms[1:]:  # prefer in-epoch batch timing when it exists (excludes evaluation)
                steady = statistics.median(self.steady_ms[1:])
        elif self.steady_ms:
            steady = self.steady_ms[0]
        return {
            "total_s": round(total_s, 3),
            "first_epoch_s": round(self.epoch_seconds[0], 3) if self.epoch_seconds else None,
            "compile_s": round(self.compile_s, 3) if self.compile_s is not None else None,
            "steady_ms_per_step": round(steady, 4) if steady else None,
            "samples_per_s": round(1000 * self.batch_size / steady, 1) if steady else None,
        }

    def raise_if_diverged(self) -> None:
        if self.diverged_at is not None:
            raise DivergedError(
                f"training diverged: the loss became NaN/inf in epoch {self.diverged_at}; "
                "stopped, history so far is kept (try a smaller learning rate)"
            )


def load_state(run_dir: Path) -> dict:
    """The saved state (settings, epochs done, history) of an interrupted run, for --resume; checked, since
    the file may have been edited or damaged: a bad one is one InputError, never a traceback later."""
    from workloads.errors import InputError

    run_dir = Path(run_dir)
    saved = (run_dir / CHECKPOINT).is_file() or (run_dir / NEXT_CHECKPOINT).is_file()
    if not saved or not (run_dir / STATE).is_file():
        raise InputError(f"--resume {run_dir}: no {CHECKPOINT} and {STATE} there (nothing to resume)")
    try:
        state = json.loads((run_dir / STATE).read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(f"--resume {run_dir}: {STATE} is unreadable ({str(exc)[:200]})") from None
    if problem := state_problem(state):
        raise InputError(f"--resume {run_dir}: {STATE} {problem} (not the state of an interrupted run)")
    return state


def state_problem(state: object) -> str | None:
    """What is wrong with a state.json's content, or None."""

    def count(value: object, low: int, high: int = 2**63) -> bool:
        return type(value) is int and low <= value < high

    if not isinstance(state, dict):
        return "is not a JSON object"
    checks = {
        "stage": count(state.get("stage"), 1, 100),
        "quick": type(state.get("quick")) is bool,
        "data": state.get("data", 0) is None or isinstance(state.get("data"), str),
        "seed": count(state.get("seed"), 0, 2**32),
        "epochs": count(state.get("epochs"), 1, 100_000),
        "config": isinstance(state.get("config"), dict),
        "epochs_done": count(state.get("epochs_done"), 0, 100_000),
        "checkpoint_sha256": state.get("checkpoint_sha256") is None  # None: saved before it was recorded
        or (isinstance(state["checkpoint_sha256"], str) and len(state["checkpoint_sha256"]) == 64),
        "history": isinstance(state.get("history"), dict)
        and all(
            isinstance(k, str)
            and isinstance(v, list)
            and all(type(x) in (int, float) and math.isfinite(x) for x in v)
            for k, v in state["history"].items()
        ),
    }
    bad = [key for key, ok in checks.items() if not ok]
    if bad:
        return f"has a missing or wrong {', '.join(bad)}"
    if state["epochs_done"] > state["epochs"]:
        return f"says {state['epochs_done']} of {state['epochs']} epochs are done"
    return None


def load_checkpoint(run_dir: Path) -> tuple[keras.Model, dict]:
    """The model and state of an interrupted run, for --resume."""
    from workloads.errors import InputError

    state = load_state(run_dir)
    settle_checkpoint(Path(run_dir), state)
    try:
        model = keras.saving.load_model(Path(run_dir) / CHECKPOINT)
    except Exception as exc:  # a damaged zip, a file that is no Keras model: all mean "cannot resume"
        raise InputError(
            f"--resume {run_dir}: {CHECKPOINT} is not a loadable Keras model ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else ''})"
        ) from None
    return model, state


def settle_checkpoint(run_dir: Path, state: dict) -> None:
    """Make checkpoint.keras the one state.json was saved with: finish a save stopped after its commit point
    (NEXT_CHECKPOINT is the one), or drop one stopped before it; a checkpoint that matches neither is one
    InputError (changed or damaged), never a resume from weights that do not go with the state."""
    from workloads.errors import InputError

    wanted = state.get("checkpoint_sha256")
    current, pending = run_dir / CHECKPOINT, run_dir / NEXT_CHECKPOINT
    if wanted is None:  # a state saved before the digest was recorded: the checkpoint as it is
        return
    if pending.is_file() and file_sha256(pending) == wanted:
        os.replace(pending, current)
    elif current.is_file() and file_sha256(current) == wanted:
        pending.unlink(missing_ok=True)
    else:
        raise InputError(
            f"--resume {run_dir}: {CHECKPOINT} is not the one {STATE} was saved with (changed or damaged)"
        )


def file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def restart(model: keras.Model, weights: list) -> None:
    """Give a compiled model `weights` and a fresh optimizer state (step count, moments; not its learning
    rate), so it trains as a newly built one would, without compiling again (no new tracing)."""
    model.set_weights(weights)
    for variable in model.optimizer.variables:
        if variable.name != "learning_rate":
            variable.assign(keras.ops.zeros(variable.shape, variable.dtype))


class EpochValidation(keras.callbacks.Callback):
    """Validation on a small set in one compiled call per epoch (`test_on_batch`), as `val_*` logs.

    fit's own per-epoch evaluate() has a fixed cost (iterator, callbacks, metric resets) that dominates
    epochs of a few steps: for moons it is a quarter of the training time. Place it first in the callback
    list so the recorder, History and the progress bar see the `val_*` values.
    """

    def __init__(self, x, y) -> None:
        super().__init__()
        self.x, self.y = x, y

    def on_epoch_end(self, epoch, logs=None):
        results = self.model.test_on_batch(self.x, self.y, return_dict=True)
        if logs is not None:
            logs.update({f"val_{name}": float(value) for name, value in results.items()})
