"""transfer: image folders (bad input included), InceptionV3 with local weights, and --base self."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import run_workloads
from tests.workloads.test_cli import assert_one_line_error
from tests.workloads.test_image_folder import pet_folder
from workloads.errors import InputError
from workloads.harness import thresholds


@pytest.fixture(scope="module")
def tr():
    from workloads.recipes import transfer

    return transfer


@pytest.fixture
def folder(tmp_path) -> Path:
    return pet_folder(tmp_path / "pets")


# --- InceptionV3: the real recipe with a local weights file -------------------------------------------------
@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory, tr) -> Path:
    """A local no-top weights file, as `--weights FILE` gets it (saved from a weights=None InceptionV3)."""
    import keras

    path = tmp_path_factory.mktemp("weights") / "inception_notop.weights.h5"
    keras.utils.set_random_seed(3)
    keras.applications.InceptionV3(include_top=False, weights=None, input_shape=(150, 150, 3)).save_weights(
        path
    )
    return path


def test_inception_base_loads_local_weights_and_fine_tunes_top_block(inception_weights, tr):
    import keras

    cfg = tr.InceptionConfig()
    base = tr.inception_base(inception_weights, cfg)
    assert base.output.shape[1:] == (7, 7, 768) and base.layers[-1].name == "mixed7"
    assert not base.trainable_weights
    reference = keras.applications.InceptionV3(include_top=False, weights=None, input_shape=(150, 150, 3))
    reference.load_weights(inception_weights)
    # layer names are numbered per process, so compare the first convolutions by position
    first_conv = next(lay for lay in base.layers if isinstance(lay, keras.layers.Conv2D))
    expected = next(lay for lay in reference.layers if isinstance(lay, keras.layers.Conv2D)).get_weights()[0]
    assert np.array_equal(first_conv.get_weights()[0], expected)
    fresh = keras.applications.InceptionV3(include_top=False, weights=None, input_shape=(150, 150, 3))
    other = next(lay for lay in fresh.layers if isinstance(lay, keras.layers.Conv2D)).get_weights()[0]
    assert not np.array_equal(other, expected)  # so the equality above means: loaded from the file
    tuned = tr.unfreeze_top_block(base, cfg.top_block_after)
    names = [layer.name for layer in base.layers]
    start = names.index("mixed6") + 1
    assert tuned > 0
    assert all(not lay.trainable for lay in base.layers[:start])
    for lay in base.layers[start:]:
        assert lay.trainable == (not isinstance(lay, keras.layers.BatchNormalization))
    model = tr.build_inception_model(base, 3, cfg)
    assert model.output.shape[-1] == 3
    dense = [lay for lay in model.layers if isinstance(lay, keras.layers.Dense)]
    assert [d.units for d in dense] == [1024, 3]


def test_inception_cli_two_phases(folder, inception_weights, tmp_path):
    out = tmp_path / "run"
    proc = run_workloads(
        "transfer", "--base", "inception_v3", "--quick", "--weights", str(inception_weights),
        "--data", str(folder), "--batch-size", "4", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    m = result["metrics"]
    assert result["stage"] == "inception_v3" and result["status"] == "unchecked"
    assert 0 <= m["phase1_accuracy"] <= 1 and 0 <= m["phase2_accuracy"] <= 1
    assert m["finetuned_base_params"] > 0
    assert result["dataset"]["skipped_count"] == 2
    assert {"phase1_accuracy", "phase2_accuracy", "phase1_loss"} <= set(result["history"])
    assert result["plots"] == ["phases.png"] and (out / "phases.png").stat().st_size > 5000


def test_missing_weights_file(tmp_path, folder):
    proc = run_workloads(
        "transfer", "--base", "inception_v3", "--weights", str(tmp_path / "nope.h5"), "--data", str(folder),
        "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert_one_line_error(proc, "--weights", "no such file")


# --- --base self -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ts():
    from workloads.recipes import transfer_self

    return transfer_self


@pytest.fixture(scope="module")
def digits():
    from workloads.data import images as data

    return data.load_digits_fallback()


def test_split_and_draws_keep_classes_apart(digits, ts):
    cfg = ts.SelfConfig(labels_per_class=3, quick_pretrain_images=300, quick_test_images=100)
    parts = ts.split_classes(digits, cfg, quick=True, seed=0)
    assert set(parts["pretrain"][1]) <= set(range(5)) and len(parts["pretrain"][1]) == 300
    assert set(parts["test"][1]) == set(range(5)) and len(parts["test"][1]) == 100  # classes 5-9, relabelled
    rng = np.random.default_rng(0)
    x1, y1 = ts.draw_few(parts["pool"], 3, rng)
    x2, _ = ts.draw_few(parts["pool"], 3, rng)
    assert x1.shape == (15, 28, 28, 1) and np.bincount(y1).tolist() == [3] * 5
    assert not np.array_equal(x1, x2), "each draw takes other images"
    with pytest.raises(InputError, match="fewer than --labels-per-class"):
        ts.split_classes(digits, ts.SelfConfig(labels_per_class=10_000), quick=True, seed=0)


def test_repeated_fills_the_steps_with_reshuffled_passes(ts):
    x, y = np.arange(5), np.arange(5) * 10
    xr, yr = ts.repeated(x, y, steps=4, batch_size=3, rng=np.random.default_rng(0))
    assert len(xr) == 12 and (yr == xr * 10).all()
    assert sorted(xr[:5]) == list(range(5)) and sorted(xr[5:10]) == list(range(5))


def test_restart_trains_like_a_new_model(ts):
    """A compiled model restarted with other weights trains exactly as a new one built with them: its
    optimizer state (step count, Adam's moments) is reset. (No dropout here: its random stream is not a
    weight.)"""
    import keras

    from workloads.training.recorder import restart

    def build():
        return keras.Sequential([ts.build_base(), keras.layers.Dense(5, activation="softmax")])

    rng = np.random.default_rng(0)
    x, y = rng.random((32, 28, 28, 1), dtype=np.float32), rng.integers(0, 5, 32)
    start = build().get_weights()
    used = ts.compile_model(build(), 1e-3, 4)
    used.fit(x, y[::-1], batch_size=8, verbose=0)  # it has trained: weights and optimizer state moved
    restart(used, start)
    fresh = ts.compile_model(build(), 1e-3, 4)
    fresh.set_weights(start)
    for model in (used, fresh):
        model.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(used.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    unreset = ts.compile_model(build(), 1e-3, 4)  # the control: weights set back, optimizer state kept
    unreset.fit(x, y[::-1], batch_size=8, verbose=0)
    unreset.set_weights(start)
    unreset.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    assert not np.allclose(unreset.get_weights()[-2], fresh.get_weights()[-2], rtol=1e-4, atol=1e-6)


def test_a_broken_base_fails_the_check_on_every_dataset():
    """A re-initialized base scores chance (0.2) on classes 0-4: every dataset's thresholds refuse it."""
    for dataset in ("mnist", "fashion_mnist", "digits_fallback", "idx"):
        rules = thresholds.thresholds_for("transfer", "self", "quick", dataset)
        assert {"pretrain_accuracy", "transfer_margin"} <= set(rules), dataset
        assert not thresholds.check({"pretrain_accuracy": 0.25}, rules)["pretrain_accuracy"]["passed"]


def test_on_mnist_transfer_must_beat_scratch_by_points():
    rules = thresholds.thresholds_for("transfer", "self", "quick", "mnist")
    assert thresholds.parse(rules["transfer_margin"])[1] >= 0.03


def test_self_rejects_weights_and_bad_counts(tr):
    with pytest.raises(InputError, match="--weights is for --base inception_v3"):
        tr.main(SimpleNamespace(), base="self", weights="x.h5")
    for option in ("labels_per_class", "draws"):
        with pytest.raises(InputError, match=f"--{option.replace('_', '-')} must be at least 1"):
            tr.main(SimpleNamespace(), base="self", **{option: 0})
