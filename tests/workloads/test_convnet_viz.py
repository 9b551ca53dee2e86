"""convnet-viz: canvases, the three techniques and their checks, Grad-CAM on JAX, Xception, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import REPO, run_workloads
from tests.workloads.test_cli import assert_one_line_error
from workloads.errors import InputError
from workloads.harness import thresholds


@pytest.fixture(scope="module")
def cv():
    from workloads.recipes import convnet_viz

    return convnet_viz


# --- data ---------------------------------------------------------------------------------------------------
def test_canvases_place_digits_inside_their_boxes(cv):
    rng = np.random.default_rng(0)
    images = np.zeros((20, 28, 28), dtype=np.uint8)
    images[:, 8:20, 10:16] = 200  # an ink block of 12x6 in each image
    canvases, labels, boxes = cv.make_canvases(images, np.arange(20) % 10, 56, copies=2, seed=1)
    assert canvases.shape == (40, 56, 56) and labels.shape == (40,)
    for canvas, (t, left, b, r, pt, pl, pb, pr) in zip(canvases, boxes, strict=True):
        assert (b - t, r - left) == (12, 6) and (pb - pt, pr - pl) == (28, 28)
        assert canvas[t:b, left:r].min() == 200 and canvas.sum() == 200 * 72  # all ink inside the box
        assert pt <= t and b <= pb and pl <= left and r <= pr
    assert len({tuple(b[:2]) for b in boxes}) > 10, "positions must vary"
    with pytest.raises(InputError, match="smaller than the images"):
        cv.make_canvases(images, np.zeros(20), 20)
    del rng


def test_pointing_game_scores_hits_and_misses(cv):
    heat = np.zeros((2, 14, 14), dtype="float32")
    heat[0, 2, 2] = 1.0  # peak near the top-left corner
    heat[1, 12, 12] = 1.0  # peak near the bottom-right corner
    boxes = np.array([[0, 0, 28, 28], [0, 0, 28, 28]])
    game = cv.pointing_game(heat, boxes, (56, 56))
    assert game["hits"] == [True, False] and game["pointing_game"] == 0.5
    assert game["pointing_game_chance"] == pytest.approx(0.25)


def test_checks_can_fail(cv):
    """Falling filter activations and a low pointing score fail the thresholds of the data file."""
    checks = cv.filter_checks(np.array([1.0, 2.0, 3.0]), np.array([0.5, 1.0, 4.0]))
    assert checks["filter_rise_fraction"] == pytest.approx(1 / 3)
    rules = thresholds.thresholds_for("convnet_viz", "canvas", "quick", "digits_fallback")
    assert {"pointing_game", "filter_rise_fraction", "zero_channel_fraction_max"} <= set(rules)
    bad = {"pointing_game": 0.5, "filter_rise_fraction": 1 / 3, "zero_channel_fraction_max": 0.9}
    verdicts = thresholds.check(bad, rules)
    assert not any(verdicts[k]["passed"] for k in bad)


# --- the whole quick run: the three techniques really work ------------------------------------------------
def test_quick_run_passes_pointing_game(tmp_path):
    """The canvas convnet trained in-process (digits here, MNIST where cached): Grad-CAM finds the digit."""
    proc = run_workloads("convnet-viz", "--quick", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    m = result["metrics"]
    assert result["status"] == "passed" and result["stage"] == "canvas"
    assert m["pointing_game"] >= 0.85 and m["pointing_game"] > 2 * m["pointing_game_chance"]
    assert m["activation_shapes_ok"] is True and m["activation_shape_mismatches"] == 0
    assert set(m["activation_layers"]) == {"relu1", "relu2", "relu3"}
    assert m["activation_layers"]["relu1"]["shape"] == [56, 56, 16]
    assert m["filter_rise_fraction"] >= 0.9 and m["filter_activation_ratio_median"] > 1
    assert len(m["filter_activation_start"]) == 16
    assert sorted(result["plots"]) == ["activations.png", "filter_patterns.png", "grad_cam.png"]
    for plot in result["plots"]:
        assert (tmp_path / plot).stat().st_size > 5000
    assert (tmp_path / "model.keras").is_file()


def test_saved_stage5_model(tmp_path, cv):
    """--model PATH with the MNIST workload's stage-5 convnet (batch norm, separate ReLUs), 28x28."""
    import keras

    from workloads.harness.run import RunContext
    from workloads.recipes import mnist

    model = mnist.build_model(mnist.stage_config(5))
    path = tmp_path / "stage5.keras"
    model.save(path)
    ctx = RunContext(
        workload="convnet-viz", out_dir=tmp_path / "run", backend=keras.backend.backend(), level="quick"
    )
    ctx.out_dir.mkdir()
    assert cv.main(ctx, model=str(path)) == 0
    result = json.loads((ctx.out_dir / "result.json").read_text())
    m = result["metrics"]
    assert result["stage"] == "loaded" and m["activation_shapes_ok"] is True
    assert len(m["activation_layers"]) == 3  # the three conv blocks' ReLUs
    assert m["filter_layer"] == model.layers[6].name  # the last Conv2D
    assert "pointing_game" not in m  # 28x28 inputs: no canvas to point into


def test_grad_cam_and_filter_patterns_on_jax():
    """The visualization steps on the JAX backend (what a GPU machine without TensorFlow runs)."""
    script = textwrap.dedent(
        """
        import numpy as np, keras
        from workloads.recipes import convnet_viz as cv
        keras.utils.set_random_seed(0)
        model = cv.build_canvas_model(28, 10, 0.01)  # small: JAX convolutions on a CPU are slow
        x = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
        heat, cls = cv.grad_cam(model, x, "relu3", np.array([1, 2, 3, 4]))
        assert heat.shape == (4, 7, 7) and 0 <= heat.min() and heat.max() <= 1, heat.shape
        assert list(cls) == [1, 2, 3, 4]
        images, start, end = cv.filter_patterns(model, "conv3", [0, 1, 2, 3], steps=5)
        assert images.shape == (4, 28, 28, 1) and (end > start).all(), (start, end)
        print("JAX VIZ OK")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "JAX VIZ OK" in proc.stdout


# --- Xception: the book's example, real code with weights=None ----------------------------------------------
def test_xception_grad_cam_on_a_photo(tmp_path, cv):
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photo = tmp_path / "china.jpg"
    Image.fromarray(load_sample_images().images[0]).save(photo)
    out = cv.xception_grad_cam(photo, weights=None)
    assert out["heatmap"].shape == (10, 10)  # block14_sepconv2_act of a 299x299 input
    assert out["heatmap"].min() >= 0 and out["heatmap"].max() <= 1
    assert 0 <= out["class_index"] < 1000 and out["label"] == f"class {out['class_index']}"
    assert out["photo"].shape == (299, 299, 3)
    name = cv.plot_grad_cam(out["photo"][None], out["heatmap"][None], tmp_path / "cam.png", titles=["x"])
    assert (tmp_path / name).stat().st_size > 5000


def test_class_names_or_a_named_warning(tmp_path, cv, monkeypatch, capsys):
    """ImageNet's class names come from imagenet_class_index.json (Keras cache or download); without it the
    label is the class index and a warning names why (here: Keras's own error for a failed download)."""
    from keras.src.applications import imagenet_utils
    from keras.src.utils import file_utils

    preds = np.full((1, 1000), 0.5 / 999, dtype="float32")
    preds[0, 7] = 0.5

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(imagenet_utils, "CLASS_INDEX", None)
    monkeypatch.setattr(file_utils, "get_file", offline)
    assert cv.class_label(preds, 7) == "class 7"
    assert "warning: no ImageNet class names (URL fetch failure" in capsys.readouterr().out

    index = tmp_path / "imagenet_class_index.json"
    index.write_text(json.dumps({str(i): [f"n{i:08d}", f"name{i}"] for i in range(1000)}))
    monkeypatch.setattr(file_utils, "get_file", lambda *args, **kwargs: str(index))
    assert cv.class_label(preds, 7) == "name7 (50.0%)" and not capsys.readouterr().out


# --- bad input ----------------------------------------------------------------------------------------------
def test_unknown_layer(tmp_path):
    proc = run_workloads("convnet-viz", "--quick", "--layer", "nope", "--out", str(tmp_path))
    assert_one_line_error(proc, "--layer 'nope': no such layer", "conv3")


def test_unreadable_image(tmp_path):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"this is not a jpeg")
    proc = run_workloads(
        "convnet-viz", "--model", "xception", "--image", str(bad), "--out", str(tmp_path / "o")
    )
    assert_one_line_error(proc, "cannot read it as an image")


def test_missing_weights_and_model_files(tmp_path, cv):
    photo = tmp_path / "p.png"
    from PIL import Image

    Image.new("RGB", (40, 30), "red").save(photo)
    with pytest.raises(InputError, match="no such file"):
        cv.main(SimpleNamespace(), model="xception", image=photo, weights=str(tmp_path / "none.h5"))
    with pytest.raises(InputError, match="no such file"):
        cv.load_model(tmp_path / "missing.keras")
    (tmp_path / "junk.keras").write_text("junk")
    with pytest.raises(InputError, match="cannot load"):
        cv.load_model(tmp_path / "junk.keras")
    with pytest.raises(InputError, match="needs --image"):
        cv.main(SimpleNamespace(), model="xception", weights=str(tmp_path / "none.h5"))
    assert not Path(tmp_path / "none.h5").exists()
