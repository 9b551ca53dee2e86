"""A checkpoint and its state.json never out of step: the model is written beside the last one, state.json
names its sha256 (the commit point), then it replaces the last one. Stopped between those steps (Ctrl-C,
SIGKILL, a full disk), --resume finishes or drops the save; a checkpoint that matches neither is refused.
Once, a stop between the model's rename and the state's resumed new weights with the old epoch count."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from workloads.errors import InputError
from workloads.training import recorder
from workloads.training.recorder import CHECKPOINT, NEXT_CHECKPOINT, STATE, RunRecorder, load_checkpoint

STATE_FIELDS = {"stage": 1, "quick": True, "data": None, "seed": 0, "epochs": 5, "config": {}}


def tiny(value: float) -> keras.Model:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.set_weights([np.full((2, 1), value, "float32"), np.zeros(1, "float32")])
    return model


def saver(folder: Path, model: keras.Model) -> RunRecorder:
    rec = RunRecorder(batch_size=1, steps_per_epoch=1, checkpoint_dir=folder, state=dict(STATE_FIELDS))
    rec.set_model(model)
    return rec


def kernel(folder: Path) -> float:
    model, _ = load_checkpoint(folder)
    return float(model.get_weights()[0][0, 0])


class Stop(BaseException):
    """Ctrl-C, or a kill, at one point of the save."""


def test_a_save_stopped_after_its_commit_point_is_finished_by_resume(tmp_path, monkeypatch) -> None:
    saver(tmp_path, tiny(1.0)).save_checkpoint(1)
    real = recorder.os.replace

    def replace(src, dst) -> None:  # the last step: the pending model over the last one
        if Path(dst).name == CHECKPOINT:
            raise Stop
        real(src, dst)

    monkeypatch.setattr(recorder.os, "replace", replace)
    with pytest.raises(Stop):
        saver(tmp_path, tiny(2.0)).save_checkpoint(2)
    monkeypatch.undo()
    assert (tmp_path / NEXT_CHECKPOINT).is_file(), "stopped between the state and the rename"
    assert kernel(tmp_path) == 2.0, "the weights that go with epochs_done=2"
    assert not (tmp_path / NEXT_CHECKPOINT).exists()


def test_a_save_stopped_before_its_commit_point_keeps_the_last_one(tmp_path, monkeypatch) -> None:
    saver(tmp_path, tiny(1.0)).save_checkpoint(1)
    monkeypatch.setattr(recorder, "write_json", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "full")))
    with pytest.raises(OSError):
        saver(tmp_path, tiny(2.0)).save_checkpoint(2)  # the disk filled up at the state
    monkeypatch.undo()
    _, state = load_checkpoint(tmp_path)
    assert state["epochs_done"] == 1 and kernel(tmp_path) == 1.0
    assert not (tmp_path / NEXT_CHECKPOINT).exists()


def test_a_checkpoint_that_is_not_the_states_is_refused(tmp_path) -> None:
    saver(tmp_path, tiny(1.0)).save_checkpoint(1)
    tiny(3.0).save(tmp_path / CHECKPOINT)  # changed behind the run's back
    with pytest.raises(InputError, match=f"{CHECKPOINT} is not the one {STATE} was saved with"):
        load_checkpoint(tmp_path)
