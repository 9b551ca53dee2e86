"""Image data for the workloads: an IDX reader (MNIST, Fashion-MNIST) and the MNIST loading chain.

Order: `--data DIR` with IDX files; the Keras cache or download (`keras.datasets.mnist`); and only when
neither is available, scikit-learn's real 8x8 digits upsampled to 28x28, announced loudly.
"""

from __future__ import annotations

import gzip
import math
import socket
import tomllib
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from workloads.data.cache import keras_home
from workloads.errors import InputError

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
_DEFLATE_MAX_RATIO = (
    1032  # the most deflate can expand (zlib's technical details): a bound on a gzip's content
)
# What a --data folder must hold to be trained on: the meaning, not only the format.
IMAGE_SHAPE = (28, 28)  # what every workload's network takes (MNIST's format)
# At most this many images (or labels) per IDX file: MNIST has 60,000 training images, QMNIST 120,000. A
# gzip honestly inflates up to 1032:1, so without a cap a 486 KB file declaring 500 MB is read whole.
MAX_ITEMS = 200_000
# Fewer than 100 training images is no dataset to judge a recipe by (--quick trains for about 30,000
# samples: passes over the same few, capped by recipes/mnist.py); fewer than 10 test images cannot judge an
# accuracy.
MIN_TRAIN_IMAGES = 100
MIN_TEST_IMAGES = 10
KNOWN_DATASETS: dict = tomllib.loads((Path(__file__).with_name("datasets.toml")).read_text())
FASHION_MNIST_DIR = Path(KNOWN_DATASETS["fashion_mnist"]["debian_path"])


@dataclass
class ImageDataset:
    """Grey images as uint8 arrays (N, 28, 28) with integer labels, plus where they came from."""

    name: str
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str] = field(default_factory=lambda: [str(i) for i in range(10)])
    fallback: bool = False

    def describe(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "fallback": self.fallback,
            "train_size": len(self.x_train),
            "test_size": len(self.x_test),
            "image_shape": list(self.x_train.shape[1:]),
            "classes": len(self.classes),
        }


# --- IDX ---------------------------------------------------------------------------------------------------
def _find_idx(data_dir: Path, stem: str) -> Path:
    for candidate in (data_dir / f"{stem}.gz", data_dir / stem):
        if candidate.is_file():
            return candidate
    raise InputError(f"{data_dir}: missing {stem}[.gz] (expected the four standard MNIST IDX files)")


def holds_idx(folder: Path) -> bool:
    """Whether ``folder`` holds the four standard IDX files (gzip or raw): an MNIST-format folder, not only
    its name (a package's folder can stay behind empty)."""
    try:
        return all(_find_idx(Path(folder), stem) for stem in IDX_FILES.values())
    except (InputError, OSError):
        return False


def read_idx(
    path: Path, expect_dims: int, item_shape: tuple[int, ...] | None = None, max_items: int | None = MAX_ITEMS
) -> np.ndarray:
    """Read one IDX file (raw or gzip) and validate its magic number and size.

    The header is read first; the body is read only up to the size it declares (plus one byte, to tell a
    padded file), so a small gzip that inflates to gigabytes is refused without being inflated; so is a
    header that declares more than `max_items` items, or items of another shape than `item_shape`.
    """
    path = Path(path)
    header_size = 4 + 4 * expect_dims
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            header = f.read(header_size)
            if len(header) < header_size:
                raise InputError(f"{path}: truncated header ({len(header)} bytes)")
            magic = int.from_bytes(header[:4], "big")
            expected_magic = _IMAGES_MAGIC if expect_dims == 3 else _LABELS_MAGIC
            if magic != expected_magic:
                raise InputError(f"{path}: wrong magic number 0x{magic:08x}, expected 0x{expected_magic:08x}")
            dims = [int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(expect_dims)]
            size = _declared_size(path, dims)
            _check_meaning(path, dims, item_shape, max_items)
            body = bytearray()
            while len(body) <= size and (chunk := f.read(min(1 << 24, size + 1 - len(body)))):
                body += chunk  # grows with what is really there, never allocated from the header's word
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise InputError(f"{path}: cannot read ({exc})") from None
    if len(body) != size:
        got = "the file has more" if len(body) > size else f"the file has {len(body)}"
        raise InputError(f"{path}: truncated or padded: header says {dims} ({size} bytes), {got}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _declared_size(path: Path, dims: list[int]) -> int:
    """Bytes the header promises (Python integers: no overflow), refused when empty or impossible."""
    if dims[0] == 0:
        raise InputError(f"{path}: the header says it holds 0 items")
    if any(d == 0 for d in dims[1:]):
        raise InputError(f"{path}: the header says each image is {'x'.join(map(str, dims[1:]))} pixels")
    size = math.prod(dims)
    # Reading stops at the declared size, and a raw file holds at most its own size. A gzip inflates at most
    # 1032:1 (deflate's limit): a header that declares more than that cannot be true; say so before inflating.
    compressed = path.stat().st_size
    if path.suffix == ".gz" and size > compressed * _DEFLATE_MAX_RATIO:
        raise InputError(
            f"{path}: header says {dims} ({size} bytes), more than a {compressed}-byte gzip file can hold"
        )
    return size


def _check_meaning(path: Path, dims: list[int], item_shape: tuple | None, max_items: int | None) -> None:
    """The header's promise against what the workloads can use, before the body is read."""
    if item_shape is not None and tuple(dims[1:]) != tuple(item_shape):
        raise InputError(
            f"{path}: images of {'x'.join(map(str, dims[1:]))} pixels; the workloads take "
            f"{'x'.join(map(str, item_shape))} (MNIST's format)"
        )
    if max_items is not None and dims[0] > max_items:
        raise InputError(
            f"{path}: the header says {dims[0]:,} items; at most {max_items:,} are read (MNIST has 60,000)"
        )


def load_idx_dir(data_dir: Path) -> ImageDataset:
    """Load the four IDX files of an MNIST-format dataset, validate them and recognise which dataset it is."""
    data_dir = Path(data_dir)
    try:  # a folder, or one above it, that this user may not read is one line too
        if not data_dir.is_dir():
            raise InputError(f"--data {data_dir}: no such directory")
        empty = not any(data_dir.iterdir())
    except OSError as exc:
        raise InputError(f"--data {data_dir}: cannot read the folder ({exc.strerror or exc})") from None
    if empty:
        raise InputError(f"--data {data_dir}: directory is empty")
    arrays = {}
    for key, stem in IDX_FILES.items():
        path = _find_idx(data_dir, stem)
        images = key.startswith("x")
        arrays[key] = read_idx(path, 3 if images else 1, IMAGE_SHAPE if images else None)
        arrays[key + "_path"] = path
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(images) != len(labels):
            raise InputError(
                f"{arrays[f'y_{split}_path']}: {len(labels)} labels for {len(images)} images "
                f"in {arrays[f'x_{split}_path'].name}"
            )
        if labels.size and labels.max() > 9:
            raise InputError(f"{arrays[f'y_{split}_path']}: label {labels.max()} out of range 0-9")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise InputError(f"{data_dir}: train images {arrays['x_train'].shape[1:]} and test images differ")
    for split, least in (("train", MIN_TRAIN_IMAGES), ("test", MIN_TEST_IMAGES)):
        if len(arrays[f"x_{split}"]) < least:
            raise InputError(
                f"{arrays[f'x_{split}_path']}: {len(arrays[f'x_{split}'])} image(s); the workloads need at "
                f"least {least} {'training' if split == 'train' else 'test'} images"
            )
    key = identify(arrays["y_train"], arrays["y_test"])
    info = KNOWN_DATASETS.get(key, {})
    return ImageDataset(
        name=key,
        source=f"idx:{data_dir}",
        x_train=arrays["x_train"],
        y_train=arrays["y_train"].astype("int64"),
        x_test=arrays["x_test"],
        y_test=arrays["y_test"].astype("int64"),
        classes=info.get("classes", [str(i) for i in range(10)]),
    )


def identify(train_labels: np.ndarray, test_labels: np.ndarray) -> str:
    """Name a dataset by its content (datasets.toml): test-label order and per-class counts; else `idx`."""

    def counts(labels: np.ndarray) -> list[int]:
        return np.bincount(labels.astype("int64"), minlength=10).tolist() if labels.size else []

    for key, info in KNOWN_DATASETS.items():
        head = info.get("test_labels_head")
        if (
            head
            and test_labels[: len(head)].tolist() == head
            and counts(train_labels) == info["train_class_counts"]
            and counts(test_labels) == info["test_class_counts"]
        ):
            return key
    return "idx"


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write uint8 images (N, H, W) or labels (N,) as one IDX file (gzip-compressed when named *.gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = _IMAGES_MAGIC if array.ndim == 3 else _LABELS_MAGIC
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.tobytes()
    Path(path).write_bytes(gzip.compress(payload, mtime=0) if str(path).endswith(".gz") else payload)
    return Path(path)


def write_idx_dir(dataset: ImageDataset, folder: Path, compress: bool = True) -> Path:
    """The dataset as an MNIST-format folder: the four standard IDX files (what `--data` reads)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in IDX_FILES.items():
        write_idx(folder / (stem + (".gz" if compress else "")), getattr(dataset, key))
    return folder


# --- MNIST chain ----------------------------------------------------------------------------------------
def load_mnist(data_dir: Path | None = None, allow_download: bool = True) -> ImageDataset:
    """MNIST from `data_dir`, else the Keras cache/download, else the loudly-announced digits fallback."""
    if data_dir is not None:
        return load_idx_dir(data_dir)
    dataset = _load_keras_mnist(allow_download)
    return dataset if dataset is not None else load_digits_fallback()


def _load_keras_mnist(allow_download: bool) -> ImageDataset | None:
    import keras

    cache_file = keras_home() / "datasets" / "mnist.npz"
    cached = cache_file.is_file()
    if not cached and not allow_download:
        return None
    info = KNOWN_DATASETS["mnist"]
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)  # an offline machine should fall back quickly, not hang
    try:
        # What keras.datasets.mnist.load_data() does, with the cache folder read now (Keras reads
        # $KERAS_HOME once, at import): download once, check the sha256, reuse the cached copy.
        path = keras.utils.get_file(
            "mnist.npz", origin=info["origin"], file_hash=info["sha256"], cache_dir=str(keras_home())
        )
        with np.load(path, allow_pickle=False) as f:
            x_train, y_train, x_test, y_test = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    except Exception as exc:  # any download failure means: use the fallback
        print(f"MNIST download failed ({type(exc).__name__}: {str(exc)[:120]})")
        return None
    finally:
        socket.setdefaulttimeout(previous)
    return ImageDataset(
        name="mnist",
        source="keras-cache" if cached else "keras-download",
        x_train=x_train,
        y_train=y_train.astype("int64"),
        x_test=x_test,
        y_test=y_test.astype("int64"),
    )


def load_digits_fallback(test_fraction: float = 0.2, seed: int = 0) -> ImageDataset:
    """scikit-learn's 1,797 real 8x8 digits, upsampled to 28x28 with MNIST's padding: not MNIST."""
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # 0..16 grey levels to 0..255; 8x8 -> 20x20 box centred in 28x28, like MNIST's normalisation.
    small = (digits.images * (255.0 / 16.0)).astype(np.uint8)
    images = np.zeros((len(small), 28, 28), dtype=np.uint8)
    for i, img in enumerate(small):
        images[i, 4:24, 4:24] = np.asarray(Image.fromarray(img).resize((20, 20), Image.BILINEAR))
    x_train, x_test, y_train, y_test = train_test_split(
        images,
        digits.target.astype("int64"),
        test_size=test_fraction,
        random_state=seed,
        stratify=digits.target,
    )
    banner = "!" * 78
    print(
        f"{banner}\n!! MNIST is not available (no --data, no Keras cache, no download).\n"
        f"!! FALLING BACK to scikit-learn's 8x8 digits upsampled to 28x28: this is NOT MNIST.\n"
        f"!! Thresholds for the fallback apply; results are not comparable with MNIST.\n{banner}"
    )
    return ImageDataset(
        name="digits_fallback",
        source="sklearn.datasets.load_digits",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        fallback=True,
    )


def shuffled_labels(dataset: ImageDataset, seed: int = 0) -> ImageDataset:
    """A negative control: the training labels permuted, so nothing learnable links images to labels."""
    rng = np.random.default_rng(seed)
    return replace(dataset, y_train=rng.permutation(dataset.y_train))


def subset(dataset: ImageDataset, train: int, test: int, seed: int = 0) -> ImageDataset:
    """A smaller, stratification-free random subset (for --quick runs); sizes are capped at what exists."""
    rng = np.random.default_rng(seed)
    tr = rng.permutation(len(dataset.x_train))[: min(train, len(dataset.x_train))]
    te = rng.permutation(len(dataset.x_test))[: min(test, len(dataset.x_test))]
    return ImageDataset(
        name=dataset.name,
        source=dataset.source,
        x_train=dataset.x_train[tr],
        y_train=dataset.y_train[tr],
        x_test=dataset.x_test[te],
        y_test=dataset.y_test[te],
        classes=dataset.classes,
        fallback=dataset.fallback,
    )
