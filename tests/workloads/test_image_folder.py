"""workloads/data/image_folder.py: one-subfolder-per-class image folders, bad input included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workloads.data.image_folder import image_datasets, scan_image_folder
from workloads.errors import InputError


def write_images(folder: Path, count: int, colour: tuple, sizes=((40, 30), (64, 64), (23, 51))) -> None:
    """Small RGB images of mixed sizes: one colour per class, with noise, so the classes are learnable."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(folder)))
    for i in range(count):
        w, h = sizes[i % len(sizes)]
        pixels = np.clip(np.array(colour) + rng.normal(0, 20, (h, w, 3)), 0, 255).astype("uint8")
        Image.fromarray(pixels).save(folder / f"img{i}.{'png' if i % 2 else 'jpg'}")


def pet_folder(root: Path) -> Path:
    """Two learnable classes of 8 images each, plus a corrupt .jpg and a .txt that must be skipped."""
    write_images(root / "cats", 8, (200, 60, 60))
    write_images(root / "dogs", 8, (60, 60, 200))
    (root / "cats" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (root / "dogs" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture
def folder(tmp_path) -> Path:
    return pet_folder(tmp_path / "pets")


# --- scanning ------------------------------------------------------------------------------------------
def test_scan_skips_and_counts_bad_files(folder, capsys):
    scan = scan_image_folder(folder)
    assert scan.classes == ["cats", "dogs"] and scan.counts == {"cats": 8, "dogs": 8}
    reasons = sorted(r for _, r in scan.skipped)
    assert len(reasons) == 2 and reasons[0].startswith("corrupt") and reasons[1].startswith("not an image")
    assert "skipped 2 file(s)" in capsys.readouterr().out


def test_folder_errors(tmp_path):
    with pytest.raises(InputError, match="no such directory"):
        scan_image_folder(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="at least 2 classes, found 0"):
        scan_image_folder(tmp_path / "empty")
    write_images(tmp_path / "one" / "cats", 3, (1, 2, 3))
    with pytest.raises(InputError, match="at least 2 classes, found 1"):
        scan_image_folder(tmp_path / "one")
    write_images(tmp_path / "two" / "cats", 3, (1, 2, 3))
    (tmp_path / "two" / "dogs").mkdir()
    (tmp_path / "two" / "dogs" / "x.png").write_bytes(b"garbage")
    with pytest.raises(InputError, match="'dogs' has no readable images"):
        scan_image_folder(tmp_path / "two")


def test_mixed_sizes_are_resized_and_bad_files_left_out(folder, tmp_path):
    train, val, describe = image_datasets(
        folder, image_size=150, batch_size=4, validation_split=0.2, seed=1, work_dir=tmp_path / "work"
    )
    images, labels = next(iter(train))
    assert tuple(images.shape[1:]) == (150, 150, 3) and set(np.asarray(labels)) <= {0, 1}
    n_train = sum(len(b[1]) for b in train)
    n_val = sum(len(b[1]) for b in val)
    assert n_train + n_val == 16  # the corrupt .jpg and the .txt are not in the data
    assert describe["skipped_count"] == 2 and describe["classes"] == ["cats", "dogs"]


# --- the default folder: cats_and_dogs_filtered from the Keras cache ----------------------------------------
def test_the_default_folder_comes_from_the_keras_cache(tmp_path, monkeypatch):
    """A cached zip (what `assets install` leaves) is unpacked and found, without a download."""
    import zipfile

    from workloads.data.image_folder import DEFAULT_FOLDER, default_image_folder

    images = pet_folder(tmp_path / "made" / DEFAULT_FOLDER)
    (tmp_path / "home" / "datasets").mkdir(parents=True)
    with zipfile.ZipFile(tmp_path / "home" / "datasets" / f"{DEFAULT_FOLDER}.zip", "w") as zf:
        for path in sorted(images.rglob("*")):
            zf.write(path, path.relative_to(images.parent))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    found = default_image_folder()
    assert found.name == DEFAULT_FOLDER and scan_image_folder(found).classes == ["cats", "dogs"]
