"""Image folders with one subfolder per class (transfer's `--data`): scanning, a clean view, Keras datasets.

Fewer than two classes or a class without images fail with one line; files that are not images (by extension)
or that PIL cannot decode are SKIPPED with a warning, and counted. Images of mixed sizes are resized.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from workloads.data.assets import asset_table
from workloads.data.cache import keras_home
from workloads.errors import InputError

# The extensions keras.utils.image_dataset_from_directory reads.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
DEFAULT_FOLDER = "cats_and_dogs_filtered"  # the course's dataset, an asset of assets.toml


@dataclass
class FolderScan:
    root: Path
    classes: list[str]
    counts: dict[str, int]
    skipped: list[tuple[str, str]]  # (path, reason)


def scan_image_folder(root: Path) -> FolderScan:
    """Check a one-subfolder-per-class image folder; skip (and list) non-image and corrupt files."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"--data {root}: no such directory")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise InputError(
            f"--data {root}: needs one subfolder per class and at least 2 classes, found {len(classes)}"
        )
    counts, skipped = {}, []
    for name in classes:
        counts[name] = 0
        for path in sorted(p for p in (root / name).rglob("*") if p.is_file()):
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                skipped.append((str(path), "not an image file (extension)"))
                continue
            try:
                with Image.open(path) as img:
                    img.verify()
                counts[name] += 1
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
                skipped.append((str(path), f"corrupt image ({type(exc).__name__})"))
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise InputError(f"--data {root}: class folder {empty[0]!r} has no readable images")
    for path, reason in skipped[:5]:
        print(f"warning: skipping {path}: {reason}")
    if skipped:
        print(f"warning: skipped {len(skipped)} file(s) in {root} (see result.json dataset.skipped)")
    return FolderScan(root, classes, counts, skipped)


def clean_view(scan: FolderScan, where: Path) -> Path:
    """A folder of symlinks to the good images only, when some were skipped (else the folder itself)."""
    if not scan.skipped:
        return scan.root
    bad = {p for p, _ in scan.skipped}
    for name in scan.classes:
        for path in (scan.root / name).rglob("*"):
            if path.is_file() and str(path) not in bad:
                link = where / name / path.relative_to(scan.root / name)
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.exists():
                    os.symlink(path.resolve(), link)
    return where


def image_datasets(
    data_dir: Path,
    *,
    image_size: int,
    batch_size: int,
    validation_split: float,
    seed: int,
    work_dir: Path,
) -> tuple:
    """(train, validation, describe-dict) of square `image_size` images: `train/` + `validation/` subfolders,
    or one folder split by `validation_split`. Clean views of folders with skipped files go in `work_dir`."""
    import keras

    data_dir = Path(data_dir)
    size = (image_size, image_size)
    common = dict(image_size=size, batch_size=batch_size, label_mode="int", follow_links=True)
    split = (data_dir / "train").is_dir() and (data_dir / "validation").is_dir()
    if split:
        scans = [scan_image_folder(data_dir / "train"), scan_image_folder(data_dir / "validation")]
        if scans[0].classes != scans[1].classes:
            raise InputError(f"--data {data_dir}: train/ and validation/ have different class folders")
        roots = [
            clean_view(s, work_dir / "clean" / k) for s, k in zip(scans, ("train", "validation"), strict=True)
        ]
        kw = dict(common, verbose=False)
        train = keras.utils.image_dataset_from_directory(roots[0], shuffle=True, seed=seed, **kw)
        val = keras.utils.image_dataset_from_directory(roots[1], shuffle=False, **kw)
        train_n, val_n = sum(scans[0].counts.values()), sum(scans[1].counts.values())
    else:
        scans = [scan_image_folder(data_dir)]
        root = clean_view(scans[0], work_dir / "clean" / "all")
        total = sum(scans[0].counts.values())
        if total < 4:
            raise InputError(f"--data {data_dir}: {total} images are too few to split into train/validation")
        kw = dict(common, validation_split=validation_split, seed=seed, verbose=False)
        train = keras.utils.image_dataset_from_directory(root, subset="training", shuffle=True, **kw)
        val = keras.utils.image_dataset_from_directory(root, subset="validation", shuffle=True, **kw)
        val_n = int(total * validation_split)
        train_n = total - val_n
    skipped = [f"{p}: {r}" for s in scans for p, r in s.skipped]
    describe = {
        "name": data_dir.name,
        "source": f"folder:{data_dir}",
        "fallback": False,
        "train_size": train_n,
        "test_size": val_n,
        "classes": scans[0].classes,
        "skipped_count": len(skipped),
        "skipped": skipped[:50],
    }
    return train, val, describe


def default_image_folder() -> Path:
    """cats_and_dogs_filtered via the Keras cache (`assets install` puts it there) or a download (its URL:
    assets.toml), in keras_home() as the other datasets (Keras reads $KERAS_HOME once, at its import)."""
    import keras

    spec = asset_table()[DEFAULT_FOLDER]
    try:
        path = keras.utils.get_file(spec["file"], spec["url"], extract=True, cache_dir=str(keras_home()))
    except Exception as exc:
        raise InputError(
            f"no --data and {DEFAULT_FOLDER} is neither cached nor downloadable ({str(exc)[:120]}); "
            "pass --data DIR or install an assets bundle"
        ) from None
    path = Path(path)
    return path / DEFAULT_FOLDER if (path / DEFAULT_FOLDER).is_dir() else path
