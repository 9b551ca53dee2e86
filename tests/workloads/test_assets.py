"""Offline assets: fetch (file:// URLs the tests serve), verify, pack, install, and the broken cases."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from workloads import assets
from workloads.errors import InputError


@pytest.fixture
def source(tmp_path) -> dict:
    """Files standing in for the real downloads, and an asset table pointing at them (with pins)."""
    src = tmp_path / "upstream"
    src.mkdir()
    buf = io.BytesIO()
    np.savez(buf, x_train=np.zeros((2, 28, 28), "uint8"), y_train=np.array([1, 2]),
             x_test=np.zeros((1, 28, 28), "uint8"), y_test=np.array([3]))  # fmt: skip
    (src / "mnist.npz").write_bytes(buf.getvalue())
    (src / "weights.h5").write_bytes(b"\x89HDF\r\n" + bytes(range(256)) * 40)
    with zipfile.ZipFile(src / "cats_and_dogs_filtered.zip", "w") as z:
        z.writestr("cats_and_dogs_filtered/train/cats/cat.0.jpg", b"jpeg bytes")
        z.writestr("cats_and_dogs_filtered/validation/dogs/dog.0.jpg", b"jpeg bytes")

    def spec(name: str, upstream: str, subdir: str, pin: str | None = None) -> dict:
        entry = {"file": name, "subdir": subdir, "url": (src / upstream).as_uri()}
        if pin:
            entry[pin] = hashlib.new(pin, (src / upstream).read_bytes()).hexdigest()
        return entry

    table = {
        "mnist": spec("mnist.npz", "mnist.npz", "datasets", "sha256"),
        "inception_v3_notop": spec("inception_notop.h5", "weights.h5", "models", "md5"),
        "cats_and_dogs_filtered": spec(
            "cats_and_dogs_filtered.zip", "cats_and_dogs_filtered.zip", "datasets"
        ),
    }
    return {"dir": src, "table": table}


def test_the_real_table_pins_what_keras_pins():
    table = assets.asset_table()
    assert table["mnist"]["sha256"] == "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
    assert table["inception_v3_notop"]["md5"] == "bcbd6486424b2319ff4ef7d526e38f63"
    assert table["inception_v3_notop"]["file"] == "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert {"xception", "imagenet_class_index", "cats_and_dogs_filtered", "horse_or_human"} <= set(table)
    import keras.src.applications.inception_v3 as inception

    assert table["inception_v3_notop"]["url"] == inception.WEIGHTS_PATH_NO_TOP


def test_fetch_verify_pack_install_roundtrip(tmp_path, source):
    table = source["table"]
    bundle = tmp_path / "bundle"
    manifest = assets.fetch(bundle, table=table)
    assert set(manifest["assets"]) == set(table)
    assert manifest["assets"]["mnist"]["pinned"] == "sha256"
    assert assets.verify(bundle, table) == manifest
    again = assets.fetch(bundle, table=table)  # already there: kept, not downloaded again
    assert again["assets"] == manifest["assets"]
    archive = assets.pack(bundle, tmp_path / "bundle.tar", table)
    home = tmp_path / "keras-home"
    installed = assets.install(archive, home, table)
    assert sorted(p.relative_to(home).as_posix() for p in installed) == [
        "datasets/cats_and_dogs_filtered.zip",
        "datasets/mnist.npz",
        "models/inception_notop.h5",
    ]
    assert (home / "models/inception_notop.h5").read_bytes() == (source["dir"] / "weights.h5").read_bytes()
    assert not [p for p in home.rglob(".*")], "no staging leftovers"

    # The real loading code finds the installed files with no network (the origin cannot be reached).
    import keras

    npz = keras.utils.get_file(
        "mnist.npz", "http://unreachable.invalid/mnist.npz", file_hash=table["mnist"]["sha256"],
        cache_dir=str(home),
    )  # fmt: skip
    assert Path(npz) == home / "datasets" / "mnist.npz"
    extracted = keras.utils.get_file(
        "cats_and_dogs_filtered.zip", "http://unreachable.invalid/c.zip", extract=True, cache_dir=str(home)
    )
    assert (Path(extracted) / "cats_and_dogs_filtered" / "train" / "cats" / "cat.0.jpg").is_file()


def test_install_from_a_folder_into_keras_home_env(tmp_path, source, monkeypatch):
    bundle = tmp_path / "b"
    assets.fetch(bundle, only=["mnist"], table=source["table"])
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    (path,) = assets.install(bundle, table=source["table"])
    assert path == tmp_path / "kh" / "datasets" / "mnist.npz"


def test_fetch_with_a_wrong_pinned_hash_keeps_nothing(tmp_path, source):
    table = {"mnist": {**source["table"]["mnist"], "sha256": "0" * 64}}
    with pytest.raises(InputError, match="differs from the pinned"):
        assets.fetch(tmp_path / "b", table=table)
    assert not [p for p in (tmp_path / "b").rglob("*") if p.is_file()]
    with pytest.raises(InputError, match="unknown asset 'nope'"):
        assets.fetch(tmp_path / "b", only=["nope"], table=table)
    broken = {"mnist": {**source["table"]["mnist"], "url": (tmp_path / "absent.npz").as_uri()}}
    with pytest.raises(InputError, match=r"download from .* failed"):
        assets.fetch(tmp_path / "b", table=broken)


@pytest.fixture
def bundle(tmp_path, source) -> Path:
    path = tmp_path / "bundle"
    assets.fetch(path, table=source["table"])
    return path


def test_verify_catches_tampering_and_missing_files(bundle, source):
    table = source["table"]
    weights = bundle / "models" / "inception_notop.h5"
    data = bytearray(weights.read_bytes())
    data[100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"sha256 .* differs from the manifest"):
        assets.verify(bundle, table)
    weights.unlink()
    with pytest.raises(InputError, match="missing \\(partial bundle\\)"):
        assets.verify(bundle, table)
    (bundle / "manifest.json").unlink()
    with pytest.raises(InputError, match=r"no manifest\.json"):
        assets.verify(bundle, table)


def test_verify_checks_the_pinned_hash_too(bundle, source):
    """A consistent manifest is not enough: the file must be the one Keras pins."""
    table = {**source["table"], "mnist": {**source["table"]["mnist"], "sha256": "1" * 64}}
    with pytest.raises(InputError, match="differs from the pinned"):
        assets.verify(bundle, table)


def test_broken_bundles_install_nothing(tmp_path, bundle, source):
    table = source["table"]
    home = tmp_path / "home"
    archive = assets.pack(bundle, tmp_path / "b.tar", table)
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(InputError):
        assets.install(truncated, home, table)
    # a partial bundle: the manifest lists a file the archive does not hold
    partial = tmp_path / "partial.tar"
    with tarfile.open(partial, "w") as tar:
        tar.add(bundle / "manifest.json", arcname="manifest.json")
        tar.add(bundle / "datasets" / "mnist.npz", arcname="datasets/mnist.npz")
    with pytest.raises(InputError, match="partial bundle"):
        assets.install(partial, home, table)
    # an unsafe archive member
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        tar.add(bundle / "manifest.json", arcname="../manifest.json")
    with pytest.raises(InputError, match="unsafe member"):
        assets.install(evil, home, table)
    assert not [p for p in home.rglob("*") if p.is_file()], "nothing may be half-installed"


def test_cli_verify_without_a_backend(tmp_path, bundle):
    """`assets` runs without importing Keras; a broken bundle is one line and exit 2."""
    (bundle / "datasets" / "mnist.npz").write_bytes(b"changed")
    code = (
        "import sys; from workloads.cli import main; rc = main(sys.argv[1:]); "
        "assert 'keras' not in sys.modules, 'assets imported keras'; sys.exit(rc)"
    )
    ok = subprocess.run(
        [sys.executable, "-c", code, "assets", "list"], cwd=REPO, capture_output=True, text=True
    )
    assert ok.returncode == 0 and "inception_v3_notop" in ok.stdout, ok.stderr
    proc = subprocess.run(
        [sys.executable, "-c", code, "assets", "verify", "--bundle", str(bundle)],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and "mnist.npz: size" in proc.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["format"] == 1
