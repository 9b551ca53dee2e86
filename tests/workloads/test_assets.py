"""Offline assets: fetch (file:// URLs the tests serve), verify, pack, install, and the broken cases."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from workloads.data import assets
from workloads.errors import InputError
from workloads.locks import unlock_folder


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


def test_cli_verify_without_a_backend(tmp_path, source):
    """`assets` runs without importing Keras; a broken bundle is one line and exit 2."""
    # The CLI checks against the real assets.toml: an asset it pins no hash for (trust on first fetch).
    bundle = tmp_path / "bundle"
    assets.fetch(bundle, only=["cats_and_dogs_filtered"], table=source["table"])
    (bundle / "datasets" / "cats_and_dogs_filtered.zip").write_bytes(b"changed")
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
    assert proc.stderr.count("\n") == 1 and "cats_and_dogs_filtered.zip: size" in proc.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["format"] == 1


# --- Only the assets of assets.toml, verified as they are copied, all or nothing --------------------------
def make_bundle(folder: Path, files: dict[str, tuple[str, bytes]]) -> Path:
    """A bundle folder whose manifest lists `files` (name -> (subdir/file, content)) with their hashes."""
    entries = {}
    for name, (rel, content) in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(content)
        subdir, file = rel.split("/", 1)
        entries[name] = {"file": file, "subdir": subdir, **assets.file_hashes(folder / rel)}
    (folder / "manifest.json").write_text(json.dumps({"format": 1, "assets": entries}))
    return folder


def tar_of(folder: Path, archive: Path, extra: dict[str, bytes] | None = None) -> Path:
    with tarfile.open(archive, "w") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=path.relative_to(folder).as_posix())
        for name, content in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return archive


def cache_state(home: Path) -> dict[str, bytes]:
    return {p.relative_to(home).as_posix(): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("name", "rel"),
    [("made_up", "datasets/mnist.npz"), ("cats_and_dogs_filtered", "datasets/mnist.npz"),
     ("made_up", "models/unrelated.h5")],
    ids=["made-up-name", "known-name-wrong-place", "made-up-model"],
)  # fmt: skip
def test_only_the_assets_of_the_table_at_their_place(tmp_path, name, rel):
    """A manifest cannot invent an asset, or move a known one, to overwrite a pinned file (real table)."""
    home = tmp_path / "home"
    (home / "datasets").mkdir(parents=True)
    (home / "datasets" / "mnist.npz").write_bytes(b"the pinned MNIST")
    before = cache_state(home)
    bundle = make_bundle(tmp_path / "bundle", {name: (rel, b"replacement")})
    for source in (bundle, tar_of(bundle, tmp_path / "b.tar")):
        with pytest.raises(InputError, match=r"unknown asset|assets\.toml says"):
            assets.install(source, home)
        assert cache_state(home) == before


def test_a_folder_bundle_changed_during_the_install_is_never_installed(tmp_path):
    """Each file is hashed while it is copied: what gets installed is what was checked, even when the bundle
    file is swapped (same size, other bytes) at any moment of the install."""
    table = {"cats_and_dogs_filtered": assets.asset_table()["cats_and_dogs_filtered"]}
    rel = "datasets/cats_and_dogs_filtered.zip"
    good, evil = b"G" * (8 << 20), b"E" * (8 << 20)
    bundle = make_bundle(tmp_path / "bundle", {"cats_and_dogs_filtered": (rel, good)})
    (tmp_path / "good").write_bytes(good)
    (tmp_path / "evil").write_bytes(evil)
    stop = threading.Event()

    def swap() -> None:
        tmp = bundle / "datasets" / ".swap"
        while not stop.is_set():
            for version in ("evil", "good"):
                os.link(tmp_path / version, tmp)
                os.replace(tmp, bundle / rel)

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    outcomes = []
    try:
        for i in range(25):
            home = tmp_path / f"home{i}"
            try:
                assets.install(bundle, home, table)
            except InputError as exc:
                assert "differs from the manifest" in str(exc)
                assert not (home / rel).exists(), "a refused install must not leave the file"
                outcomes.append("refused")
            else:
                assert (home / rel).read_bytes() == good, "installed bytes that do not match the manifest"
                outcomes.append("installed")
    finally:
        stop.set()
        swapper.join()
    print(f"swapped bundle: {outcomes.count('installed')} installed, {outcomes.count('refused')} refused")


def test_members_the_manifest_does_not_list_are_refused(tmp_path):
    home = tmp_path / "home"
    bundle = make_bundle(
        tmp_path / "bundle", {"cats_and_dogs_filtered": ("datasets/cats_and_dogs_filtered.zip", b"z")}
    )
    archive = tar_of(bundle, tmp_path / "b.tar", extra={"models/extra.h5": b"not listed"})
    with pytest.raises(InputError, match=r"unexpected file 'models/extra\.h5'"):
        assets.install(archive, home)
    assert cache_state(home) == {} and not list(home.iterdir())


def test_a_sparse_member_is_refused_before_anything_is_read(tmp_path):
    """A 10 KB tar holding a GNU sparse member of 1 TiB apparent size: refused at once (it once kept the
    install hashing zeros for many minutes)."""
    bundle = tmp_path / "bundle"
    (bundle / "datasets").mkdir(parents=True)
    zip_path = bundle / "datasets" / "cats_and_dogs_filtered.zip"
    with open(zip_path, "wb") as fh:
        fh.truncate(1 << 40)
    entry = {
        "file": zip_path.name,
        "subdir": "datasets",
        "size": 1 << 40,
        "sha256": "0" * 64,
        "md5": "0" * 32,
    }
    (bundle / "manifest.json").write_text(
        json.dumps({"format": 1, "assets": {"cats_and_dogs_filtered": entry}})
    )
    archive = tmp_path / "sparse.tar"
    subprocess.run(
        ["tar", "--sparse", "-C", str(bundle), "-cf", str(archive), "manifest.json", "datasets"], check=True
    )
    zip_path.unlink()
    assert archive.stat().st_size < 100_000
    proc = subprocess.run(
        [sys.executable, "-m", "workloads", "assets", "install", "--archive", str(archive),
         "--keras-home", str(tmp_path / "home")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "unsafe member" in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_installed_files_get_the_mode_of_any_new_file(tmp_path, source):
    old = os.umask(0o022)
    try:
        bundle = tmp_path / "b"
        assets.fetch(bundle, only=["cats_and_dogs_filtered"], table=source["table"])
        installed = assets.install(bundle, tmp_path / "home", source["table"])
    finally:
        os.umask(old)
    for path in installed:
        assert path.stat().st_mode & 0o777 == 0o644, oct(path.stat().st_mode)


def test_a_second_install_changes_nothing_and_says_so(tmp_path, source):
    bundle = tmp_path / "b"
    assets.fetch(bundle, table=source["table"])
    home = tmp_path / "home"
    assert set(assets.install(bundle, home, source["table"]).values()) == {"installed"}
    mtimes = {p: p.stat().st_mtime_ns for p in home.rglob("*") if p.is_file()}
    assert set(assets.install(bundle, home, source["table"]).values()) == {"unchanged"}
    assert mtimes == {p: p.stat().st_mtime_ns for p in home.rglob("*") if p.is_file()}


class Killed(BaseException):
    """Stands in for SIGKILL: no except or finally of the install runs after it (cleanup is patched out)."""


def test_an_install_killed_during_its_renames_is_finished_by_the_next_run(tmp_path, source, monkeypatch):
    table = source["table"]
    home = tmp_path / "home"
    old_bundle = make_bundle(tmp_path / "old", {
        "mnist": ("datasets/mnist.npz", (source["dir"] / "mnist.npz").read_bytes()),
        "cats_and_dogs_filtered": ("datasets/cats_and_dogs_filtered.zip", b"old zip"),
    })  # fmt: skip
    new_bundle = make_bundle(tmp_path / "new", {
        "mnist": ("datasets/mnist.npz", (source["dir"] / "mnist.npz").read_bytes()),
        "cats_and_dogs_filtered": ("datasets/cats_and_dogs_filtered.zip", b"new zip"),
        "inception_v3_notop": ("models/inception_notop.h5", (source["dir"] / "weights.h5").read_bytes()),
    })  # fmt: skip
    assets.install(old_bundle, home, table)
    renames = []
    real_replace = os.replace

    def replace_then_die(src, dst):
        if renames:
            raise Killed
        renames.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(assets.os, "replace", replace_then_die)
    monkeypatch.setattr(assets.shutil, "rmtree", lambda *a, **k: None)
    with pytest.raises(Killed):
        assets.install(new_bundle, home, table)
    monkeypatch.undo()
    assert len(renames) == 1 and list(home.glob(".assets-install-*/commit.json")), "killed mid-commit"
    assets.recover(home)  # what the next install does first
    expected = {k: v for k, v in cache_state(new_bundle).items() if k != "manifest.json"}
    assert cache_state(home) == expected
    assert not list(home.glob(".assets-install-*"))


def test_an_install_interrupted_before_its_commit_point_leaves_the_old_cache(tmp_path, source, monkeypatch):
    table = source["table"]
    home = tmp_path / "home"
    assets.install(
        make_bundle(
            tmp_path / "old", {"cats_and_dogs_filtered": ("datasets/cats_and_dogs_filtered.zip", b"old")}
        ),
        home,
        table,
    )
    before = cache_state(home)
    new = make_bundle(
        tmp_path / "new", {"cats_and_dogs_filtered": ("datasets/cats_and_dogs_filtered.zip", b"new")}
    )
    monkeypatch.setattr(assets, "write_json", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        assets.install(new, home, table)
    assert cache_state(home) == before and not list(home.glob(".assets-install-*"))


@pytest.mark.parametrize("what", ["file", "unwritable"])
def test_a_keras_home_that_cannot_be_used_is_one_line(tmp_path, source, what):
    bundle = tmp_path / "b"
    assets.fetch(bundle, only=["cats_and_dogs_filtered"], table=source["table"])
    if what == "file":
        home = tmp_path / "a-file"
        home.write_text("not a folder")
    else:
        home = Path("/proc/keras-home")  # not writable, not even for root
    proc = subprocess.run(
        [sys.executable, "-m", "workloads", "assets", "install", "--bundle", str(bundle),
         "--keras-home", str(home)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and f"Keras cache {home}: cannot use it" in proc.stderr


# --- A rename that fails: undone, or finished by the next run -----------------------------------------------
def two_asset_bundle(folder: Path, version: bytes) -> Path:
    """Two assets of the real table that pin no hash (any content installs), cats first."""
    return make_bundle(folder, {
        "cats_and_dogs_filtered": ("datasets/cats_and_dogs_filtered.zip", b"cats " + version),
        "horse_or_human": ("datasets/horse-or-human.zip", b"horses " + version),
    })  # fmt: skip


def cli_install(bundle: Path, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workloads", "assets", "install", "--bundle", str(bundle),
         "--keras-home", str(home)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_folder_where_the_second_asset_goes_installs_nothing_and_a_rerun_completes(tmp_path):
    """It once installed the first asset, left the second out with a 20-line traceback, and deleted the
    staging folder and its journal."""
    home = tmp_path / "home"
    assert cli_install(two_asset_bundle(tmp_path / "old", b"old"), home).returncode == 0
    before = cache_state(home)
    (home / "datasets" / "horse-or-human.zip").unlink()
    (home / "datasets" / "horse-or-human.zip").mkdir()  # what stands in the way
    (home / "datasets" / "horse-or-human.zip" / "keep.txt").write_text("a user's file")
    new = two_asset_bundle(tmp_path / "new", b"new")
    proc = cli_install(new, home)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and "nothing installed" in proc.stderr, proc.stderr
    assert "horse-or-human.zip" in proc.stderr and "a folder stands where the file goes" in proc.stderr
    after = cache_state(home)
    assert after["datasets/cats_and_dogs_filtered.zip"] == before["datasets/cats_and_dogs_filtered.zip"]
    assert after["datasets/horse-or-human.zip/keep.txt"] == b"a user's file"
    assert not list(home.glob(f"{assets.STAGING_PREFIX}*")), "an undone install leaves no staging folder"
    shutil.rmtree(home / "datasets" / "horse-or-human.zip")
    assert cli_install(new, home).returncode == 0
    assert cache_state(home) == {k: v for k, v in cache_state(new).items() if k != "manifest.json"}


def failing_replace(monkeypatch, fail_at: set[int], error: int = 13) -> list:
    """os.replace in assets fails (EACCES) at the given calls (1-based); the others are real."""
    calls: list = []
    real = os.replace

    def replace(src, dst):
        calls.append((src, dst))
        if len(calls) in fail_at:
            raise OSError(error, os.strerror(error), str(dst))
        real(src, dst)

    monkeypatch.setattr(assets.os, "replace", replace)
    return calls


def test_a_rename_failing_after_others_puts_every_file_back(tmp_path, monkeypatch):
    home = tmp_path / "home"
    assets.install(two_asset_bundle(tmp_path / "old", b"old"), home)
    before = cache_state(home)
    calls = failing_replace(monkeypatch, {4})  # cats aside, cats in, horses aside, horses in: fails
    with pytest.raises(assets.CommitFailed, match=r"nothing installed .*Permission denied"):
        assets.install(two_asset_bundle(tmp_path / "new", b"new"), home)
    assert len(calls) > 4, "the renames before it were undone"
    assert cache_state(home) == before and not list(home.glob(f"{assets.STAGING_PREFIX}*"))


def test_an_undo_that_fails_too_keeps_the_journal_for_the_next_run(tmp_path, monkeypatch):
    home = tmp_path / "home"
    assets.install(two_asset_bundle(tmp_path / "old", b"old"), home)
    new = two_asset_bundle(tmp_path / "new", b"new")
    failing_replace(monkeypatch, {4, 5})  # the 4th rename fails, and so does the first undo
    with pytest.raises(assets.CommitFailed, match=r"could not be undone.*journal is kept") as failed:
        assets.install(new, home)
    assert failed.value.kept and list(home.glob(f"{assets.STAGING_PREFIX}*/{assets.COMMIT}"))
    monkeypatch.undo()
    assets.install(new, home)  # finishes the journal first, then finds everything in place
    assert cache_state(home) == {k: v for k, v in cache_state(new).items() if k != "manifest.json"}
    assert not list(home.glob(f"{assets.STAGING_PREFIX}*"))


def test_a_journal_that_cannot_be_finished_yet_is_kept_and_said_in_one_line(tmp_path, monkeypatch):
    """Killed during its renames, then a folder appears where a file goes: the next run says so and keeps the
    journal; once the folder is gone, the run after it finishes the install."""
    home = tmp_path / "home"
    new = two_asset_bundle(tmp_path / "new", b"new")
    monkeypatch.setattr(assets.shutil, "rmtree", lambda *a, **k: None)
    failing_replace(monkeypatch, {2}, error=4)  # "killed": cats in, then EINTR stands in for the kill
    monkeypatch.setattr(assets, "_commit", _commit_without_undo)
    with pytest.raises(OSError):
        assets.install(new, home)
    monkeypatch.undo()
    unlock_folder(home)  # the lock a killed process would have lost
    (home / "datasets" / "horse-or-human.zip").mkdir()
    proc = cli_install(new, home)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "could not be finished" in proc.stderr and "journal is kept" in proc.stderr, proc.stderr
    assert list(home.glob(f"{assets.STAGING_PREFIX}*/{assets.COMMIT}"))
    (home / "datasets" / "horse-or-human.zip").rmdir()
    proc = cli_install(new, home)
    assert proc.returncode == 0 and "finished an interrupted install" in proc.stdout, proc.stderr
    assert cache_state(home) == {k: v for k, v in cache_state(new).items() if k != "manifest.json"}


def _commit_without_undo(home: Path, staging: Path, moves: list, what: str = "") -> None:
    """The renames as a killed process leaves them: no undo, no clean-up."""
    for staged, target in moves:
        os.replace(staging / staged, home / target)


@pytest.mark.parametrize("what", ["fifo", "device"])
def test_a_bundle_that_is_no_file_is_refused_at_once(tmp_path, what):
    """A FIFO given as the archive blocked the install forever (no writer ever comes)."""
    if what == "fifo":
        archive = tmp_path / "bundle.tar"
        os.mkfifo(archive)
    else:
        archive = Path("/dev/zero")
    with pytest.raises(InputError, match="not a folder or a regular file"):
        assets.install(archive, tmp_path / "home")
