"""The IDX reader and the MNIST loading chain: real files, broken files, the fallback."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from workloads.data import images as data
from workloads.errors import InputError


def write_idx(
    path: Path, array: np.ndarray, magic: int | None = None, compress: bool = True, cut: int = 0
) -> Path:
    array = np.asarray(array, dtype=np.uint8)
    magic = magic if magic is not None else (0x0803 if array.ndim == 3 else 0x0801)
    raw = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes()
    raw = raw[: len(raw) - cut] if cut else raw
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def make_idx_dir(
    root: Path,
    n_train: int = 100,
    n_test: int = 20,
    compress: bool = True,
    test_labels: np.ndarray | None = None,
) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    write_idx(root / "train-images-idx3-ubyte", rng.integers(0, 255, (n_train, 28, 28)), compress=compress)
    write_idx(root / "train-labels-idx1-ubyte", rng.integers(0, 10, n_train), compress=compress)
    write_idx(root / "t10k-images-idx3-ubyte", rng.integers(0, 255, (n_test, 28, 28)), compress=compress)
    labels = test_labels if test_labels is not None else rng.integers(0, 10, n_test)
    write_idx(root / "t10k-labels-idx1-ubyte", labels, compress=compress)
    return root


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
def test_reads_gzip_and_raw_idx(tmp_path, compress):
    ds = data.load_idx_dir(make_idx_dir(tmp_path / "d", compress=compress))
    assert ds.x_train.shape == (100, 28, 28) and ds.x_test.shape == (20, 28, 28)
    assert ds.y_train.shape == (100,) and ds.name == "idx" and not ds.fallback


def labels_like(key: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train and test labels with a known dataset's per-class counts and test-label head."""
    info, rng = data.KNOWN_DATASETS[key], np.random.default_rng(seed)
    train = rng.permutation(np.repeat(np.arange(10), info["train_class_counts"]))
    test = np.repeat(np.arange(10), info["test_class_counts"])
    head = np.array(info["test_labels_head"])
    rest = test.tolist()
    for label in head:
        rest.remove(label)
    return train, np.concatenate([head, rng.permutation(rest)])


@pytest.mark.parametrize("key", ["mnist", "fashion_mnist"])
def test_identifies_a_known_dataset_by_its_content(key):
    assert data.identify(*labels_like(key)) == key


@pytest.mark.parametrize("change", ["subset", "reshuffled_test", "one_label_changed", "swapped"])
def test_anything_else_in_mnist_format_is_idx(change):
    train, test = labels_like("mnist")
    if change == "subset":
        train = train[:10_000]
    elif change == "reshuffled_test":
        test = np.random.default_rng(1).permutation(test)
    elif change == "one_label_changed":
        train = train.copy()
        train[train == 3] = np.where(np.arange((train == 3).sum()) == 0, 4, 3)
    else:  # MNIST's test labels with Fashion-MNIST's training counts
        train = labels_like("fashion_mnist")[0]
    assert data.identify(train, test) == "idx"


def test_a_folder_is_named_by_content_not_by_its_name(tmp_path):
    folder = make_idx_dir(tmp_path / "mnist")  # random labels in a folder called "mnist"
    assert data.load_idx_dir(folder).name == "idx"


def test_reads_debian_fashion_mnist(fashion_mnist):
    ds = data.load_idx_dir(fashion_mnist)
    assert ds.name == "fashion_mnist"
    assert (len(ds.x_train), len(ds.x_test)) == (60_000, 10_000)
    assert ds.classes[9] == "Ankle boot"
    assert set(np.unique(ds.y_train)) == set(range(10))


def test_missing_directory(tmp_path):
    with pytest.raises(InputError, match="no such directory"):
        data.load_idx_dir(tmp_path / "nope")


def test_empty_directory(tmp_path):
    with pytest.raises(InputError, match="directory is empty"):
        data.load_idx_dir(tmp_path)


def test_missing_file_is_named(tmp_path):
    d = make_idx_dir(tmp_path / "d")
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(InputError, match=r"missing t10k-labels-idx1-ubyte\[\.gz\]"):
        data.load_idx_dir(d)


def test_truncated_file(tmp_path):
    d = make_idx_dir(tmp_path / "d")
    write_idx(d / "train-images-idx3-ubyte", np.zeros((100, 28, 28)), cut=100)
    with pytest.raises(InputError, match=r"train-images-idx3-ubyte\.gz: truncated"):
        data.load_idx_dir(d)


def test_truncated_gzip_stream(tmp_path):
    d = make_idx_dir(tmp_path / "d")
    path = d / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InputError, match=r"t10k-images-idx3-ubyte\.gz: cannot read"):
        data.load_idx_dir(d)


def test_wrong_magic_number(tmp_path):
    d = make_idx_dir(tmp_path / "d")
    write_idx(d / "train-labels-idx1-ubyte", np.zeros(30), magic=0x0803)
    with pytest.raises(InputError, match="wrong magic number 0x00000803, expected 0x00000801"):
        data.load_idx_dir(d)


def test_image_label_count_mismatch(tmp_path):
    d = make_idx_dir(tmp_path / "d")
    write_idx(d / "train-labels-idx1-ubyte", np.zeros(99))
    with pytest.raises(InputError, match="99 labels for 100 images"):
        data.load_idx_dir(d)


def test_label_out_of_range(tmp_path):
    d = make_idx_dir(tmp_path / "d")
    write_idx(d / "t10k-labels-idx1-ubyte", np.full(20, 12))
    with pytest.raises(InputError, match="label 12 out of range"):
        data.load_idx_dir(d)


def test_fallback_is_real_digits_and_announced(capsys):
    ds = data.load_digits_fallback()
    assert ds.fallback and ds.name == "digits_fallback"
    assert ds.x_train.shape[1:] == (28, 28) and len(ds.x_train) + len(ds.x_test) == 1797
    assert ds.x_train.max() > 200  # upsampled to MNIST's 0-255 range
    assert "NOT MNIST" in capsys.readouterr().out


def test_load_mnist_falls_back_when_offline(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # empty cache
    ds = data.load_mnist(None, allow_download=False)
    assert ds.fallback and "NOT MNIST" in capsys.readouterr().out


def _seed_cache(keras_home: Path) -> None:
    rng = np.random.default_rng(1)
    (keras_home / "datasets").mkdir()
    np.savez(
        keras_home / "datasets" / "mnist.npz",
        x_train=rng.integers(0, 255, (12, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, 12),
        x_test=rng.integers(0, 255, (5, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, 5),
    )


def test_a_corrupt_keras_cache_is_refused_by_keras(monkeypatch, tmp_path, capsys):
    """Keras checks mnist.npz's sha256: a wrong file is not used (offline, that means the fallback)."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    _seed_cache(tmp_path)
    ds = data.load_mnist(None, allow_download=False)
    assert ds.fallback
    assert "hash does not match" in capsys.readouterr().out


def test_the_keras_cache_comes_before_the_fallback(monkeypatch, tmp_path):
    """A cache entry whose sha256 is the expected one is used as MNIST."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    _seed_cache(tmp_path)
    digest = hashlib.sha256((tmp_path / "datasets" / "mnist.npz").read_bytes()).hexdigest()
    monkeypatch.setitem(data.KNOWN_DATASETS["mnist"], "sha256", digest)
    ds = data.load_mnist(None, allow_download=False)
    assert ds.source == "keras-cache" and ds.name == "mnist" and len(ds.x_train) == 12 and not ds.fallback


def test_subset_caps_sizes():
    ds = data.load_digits_fallback()
    small = data.subset(ds, 100, 10_000)
    assert len(small.x_train) == 100 and len(small.x_test) == len(ds.x_test)


# --- Headers that lie: refused by what they declare, before the body is read --------------------------------
def write_header(path: Path, dims: tuple[int, ...], body: bytes = b"", compress: bool = False) -> Path:
    magic = 0x0803 if len(dims) == 3 else 0x0801
    raw = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + body
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


@pytest.mark.parametrize(
    ("dims", "words"),
    [
        ((2**22, 2**22, 2**20), "at most 200,000 are read"),  # 2**64 bytes: wraps to 0 in int64
        ((2**32 - 1, 2**32 - 1, 2**32 - 1), "at most 200,000 are read"),
        ((0, 28, 28), "0 items"),
        ((5, 0, 0), "0x0 pixels"),
        ((5, 28, 0), "28x0 pixels"),
    ],
    ids=["int64-wrap", "max-dims", "no-images", "0x0-pixels", "28x0-pixels"],
)
def test_impossible_headers_are_one_input_error(tmp_path, dims, words):
    path = write_header(tmp_path / "train-images-idx3-ubyte", dims)
    with pytest.raises(InputError, match=words):
        data.read_idx(path, expect_dims=3)


def test_no_labels_is_an_input_error(tmp_path):
    path = write_header(tmp_path / "train-labels-idx1-ubyte", (0,))
    with pytest.raises(InputError, match="0 items"):
        data.read_idx(path, expect_dims=1)


def test_a_gzip_header_declaring_more_than_it_can_hold(tmp_path):
    path = write_header(tmp_path / "t10k-images-idx3-ubyte.gz", (60_000, 28, 28), b"\0" * 100, compress=True)
    with pytest.raises(InputError, match=r"more than a \d+-byte gzip file can hold"):
        data.read_idx(path, expect_dims=3)


def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    """600 MB of zeros after a header that declares 10 images: a 3 MB file. Reading stops at the declared
    size, so the reader's peak memory stays far below what inflating it whole would take."""
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write((0x0803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (10, 28, 28)))
        zeros = bytes(1 << 24)
        for _ in range(600 * (1 << 20) // len(zeros)):
            fh.write(zeros)
    assert path.stat().st_size < 4 << 20
    # VmHWM: this process's peak RSS (ru_maxrss would carry pytest's own peak over the exec).
    code = (
        "import sys\n"
        "from workloads.data.images import read_idx\n"
        "from workloads.errors import InputError\n"
        "try:\n    read_idx(sys.argv[1], 3)\nexcept InputError as exc:\n    print('refused:', exc)\n"
        "print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("refused:") and "truncated or padded" in lines[0], proc.stdout
    peak_mb = int(lines[-1]) / 1024
    assert peak_mb < 300, f"peak RSS {peak_mb:.0f} MB: the body was inflated beyond its declared size"


# --- Inputs checked for meaning: what the workloads can train on --------------------------------------------
@pytest.mark.parametrize("side", [1, 64], ids=["1x1", "64x64"])
def test_images_of_another_size_are_refused_by_their_header(tmp_path, side):
    """They once reached the model and crashed it; the header says it before the body is read."""
    d = make_idx_dir(tmp_path / "d")
    write_idx(d / "train-images-idx3-ubyte", np.zeros((100, side, side)))
    with pytest.raises(InputError, match=f"images of {side}x{side} pixels; the workloads take 28x28"):
        data.load_idx_dir(d)


@pytest.mark.parametrize(("n_train", "n_test", "words"),
                         [(1, 20, "1 image(s); the workloads need at least 100 training images"),
                          (100, 3, "3 image(s); the workloads need at least 10 test images")],
                         ids=["one-training-image", "three-test-images"])  # fmt: skip
def test_too_few_images_to_train_or_judge_are_refused(tmp_path, n_train, n_test, words):
    """One training image made --quick run 30,000 epochs, then crash."""
    with pytest.raises(InputError, match=re.escape(words)):
        data.load_idx_dir(make_idx_dir(tmp_path / "d", n_train=n_train, n_test=n_test))


def test_an_honest_gzip_declaring_hundreds_of_megabytes_is_refused_unread(tmp_path):
    """A 486 KB gzip can hold 500 MB (1032:1): its header's 637,755 images are refused before inflating."""
    body = np.random.default_rng(0).integers(0, 255, 500_000, dtype=np.uint8).tobytes()  # incompressible
    path = write_header(tmp_path / "train-images-idx3-ubyte.gz", (637_755, 28, 28), body, compress=True)
    assert path.stat().st_size * 1032 > 637_755 * 784, "the ratio check alone would let it through"
    with pytest.raises(InputError, match="the header says 637,755 items; at most 200,000 are read"):
        data.read_idx(path, expect_dims=3)


@pytest.mark.parametrize("locked", ["the-folder", "a-folder-above"])
def test_an_unreadable_data_folder_is_one_input_error(locked):
    """It gave a PermissionError traceback. As root every folder is readable: the check drops to nobody."""
    top = Path(tempfile.mkdtemp(prefix="kw-unreadable-"))  # not under pytest's own 0700 folder
    try:
        d = make_idx_dir(top / "above" / "d")
        (top / "above" / "d" if locked == "the-folder" else top / "above").chmod(0o000)
        top.chmod(0o755)
        code = (
            "import sys\nfrom workloads.data.images import load_idx_dir\n"
            "from workloads.errors import InputError\n"
            "try:\n    load_idx_dir(sys.argv[1])\nexcept InputError as exc:\n    print('refused:', exc)\n"
        )
        cmd = [sys.executable, "-c", code, str(d)]
        if os.geteuid() == 0:
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    finally:
        for folder in (top / "above", top / "above" / "d"):
            with contextlib.suppress(OSError):
                folder.chmod(0o755)
        shutil.rmtree(top)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stdout.startswith("refused:") and "cannot read the folder (Permission denied)" in proc.stdout


def test_a_folder_holds_idx_only_with_its_four_files(tmp_path: Path) -> None:
    """The smoke test's default dataset counts as installed by its files, not its folder: an empty folder
    left behind (a removed package, a mount point) is not a dataset, so the workloads use their own chain."""
    assert not data.holds_idx(tmp_path / "missing")
    assert not data.holds_idx(tmp_path)
    for stem in list(data.IDX_FILES.values())[:3]:
        (tmp_path / f"{stem}.gz").write_bytes(b"")
    assert not data.holds_idx(tmp_path)
    (tmp_path / data.IDX_FILES["y_test"]).write_bytes(b"")
    assert data.holds_idx(tmp_path)
