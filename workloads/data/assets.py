"""Offline assets for air-gapped machines: `python -m workloads assets fetch|verify|pack|install|list`.

fetch   (with internet) download the assets of `assets.toml` into a bundle folder with manifest.json
verify  every file of the manifest is there, with its size and hashes (and the hash Keras pins, if any)
pack    verify, then write the bundle as one .tar
install verify a bundle (folder or .tar), then put its files into the Keras cache ($KERAS_HOME, else ~/.keras)

Nothing is half-installed (see "install" below), and only the assets of assets.toml can be installed, each at
its place and with its pinned hash. No Keras import: this works on a machine without a backend set up.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tarfile
import tempfile
import tomllib
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from gpu_doctor.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from workloads.atomic import new_file_mode, write_json
from workloads.clock import now
from workloads.data.cache import keras_home
from workloads.errors import InputError
from workloads.locks import lock_folder

ASSETS_FILE = Path(__file__).with_name("assets.toml")
MANIFEST = "manifest.json"
FORMAT = 1
MAX_MANIFEST_BYTES = 1 << 20  # a manifest lists a few files; more is not a manifest
DIGEST_LENGTH = {"sha256": 64, "md5": 32}


def asset_table(path: Path = ASSETS_FILE) -> dict:
    return tomllib.loads(Path(path).read_text())


def file_hashes(path: Path) -> dict:
    """size, sha256 and md5 of a file, read once."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return {"size": size, "sha256": sha.hexdigest(), "md5": md5.hexdigest()}


def _why(exc: BaseException) -> str:
    """An exception's message on one line (tarfile's can span several), short enough for an error line."""
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def pinned_mismatch(name: str, spec: dict, hashes: dict) -> str | None:
    """A message when a pinned hash (sha256 or md5 of assets.toml) differs from the file's."""
    for algo in ("sha256", "md5"):
        if spec.get(algo) and spec[algo] != hashes[algo]:
            return f"{name}: {algo} {hashes[algo]} differs from the pinned {spec[algo]}"
    return None


# --- fetch --------------------------------------------------------------------------------------------------
def fetch(
    bundle: Path, only: list[str] | None = None, table: dict | None = None, timeout: float = 60
) -> dict:
    """Download assets into `bundle` (skipping files already there and valid); write the manifest."""
    table = asset_table() if table is None else table
    names = only or list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise InputError(f"unknown asset {unknown[0]!r}: known are {', '.join(table)}")
    bundle = Path(bundle)
    bundle.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(bundle, table) if (bundle / MANIFEST).is_file() else _empty_manifest()
    for name in names:
        spec = table[name]
        target = bundle / spec["subdir"] / spec["file"]
        entry = manifest["assets"].get(name)
        if (
            target.is_file()
            and entry
            and file_hashes(target) == {k: entry[k] for k in ("size", "sha256", "md5")}
        ):
            print(f"{name}: already in the bundle")
            continue
        print(f"{name}: downloading {spec['url']}")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(spec["url"], timeout=timeout) as resp:
                shutil.copyfileobj(resp, out, 1 << 20)
            hashes = file_hashes(Path(tmp))
            if problem := pinned_mismatch(name, spec, hashes):
                raise InputError(f"download of {problem} (corrupted or changed upstream)")
            os.replace(tmp, target)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise InputError(f"{name}: download from {spec['url']} failed ({_why(exc)})") from None
        finally:
            Path(tmp).unlink(missing_ok=True)
        manifest["assets"][name] = {
            "file": spec["file"],
            "subdir": spec["subdir"],
            "url": spec["url"],
            **hashes,
            "pinned": "sha256" if spec.get("sha256") else "md5" if spec.get("md5") else None,
        }
        write_json(bundle / MANIFEST, manifest)  # after each file: an interrupted fetch keeps what it has
    write_json(bundle / MANIFEST, manifest)
    return manifest


def _empty_manifest() -> dict:
    return {"format": FORMAT, "created": now(), "assets": {}}


def _read_manifest(bundle: Path, table: dict | None = None) -> dict:
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        raise InputError(f"{bundle}: no {MANIFEST} (not an assets bundle)")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{path}: unreadable manifest ({exc.strerror or exc})") from None
    return _parse_manifest(raw, str(path), asset_table() if table is None else table)


def _parse_manifest(raw: bytes, where: str, table: dict) -> dict:
    """The manifest's JSON, checked for types and names: every asset must be one that assets.toml knows, at
    the place assets.toml gives it, with the hash it pins (a made-up name cannot replace mnist.npz)."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise InputError(f"{where}: manifest larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{where}: unreadable manifest ({str(exc)[:200]})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or "assets" not in manifest:
        raise InputError(f"{where}: not an assets manifest of format {FORMAT}")
    if not isinstance(manifest["assets"], dict):
        raise InputError(f"{where}: 'assets' is not a table of assets")
    if not manifest["assets"]:
        raise InputError(f"{where}: the manifest lists no assets")
    for name, entry in manifest["assets"].items():
        if name not in table:
            raise InputError(f"{where}: unknown asset {name[:80]!r} (assets.toml knows {', '.join(table)})")
        spec = table[name]
        if not isinstance(entry, dict):
            raise InputError(f"{where}: {name}: its entry is not a table")
        place = (entry.get("subdir"), entry.get("file"))
        if place != (spec["subdir"], spec["file"]):
            raise InputError(
                f"{where}: {name}: the manifest puts it at {str(place)[:200]}; "
                f"assets.toml says {spec['subdir']}/{spec['file']}"
            )
        size = entry.get("size")
        if type(size) is not int or size < 0:
            raise InputError(f"{where}: {name}: size {str(size)[:40]!r} is not a number of bytes")
        for algo, length in DIGEST_LENGTH.items():
            value = entry.get(algo)
            if not isinstance(value, str) or not re.fullmatch(f"[0-9a-f]{{{length}}}", value):
                raise InputError(f"{where}: {name}: {algo} {str(value)[:80]!r} is not a {algo} hex digest")
        if problem := pinned_mismatch(name, spec, entry):
            raise InputError(f"{where}: {problem}")
    return manifest


# --- verify -------------------------------------------------------------------------------------------------
def verify(bundle: Path, table: dict | None = None) -> dict:
    """Check each file of the manifest (exists, size, sha256, md5, pinned hash); fail at the first problem."""
    table = asset_table() if table is None else table
    bundle = Path(bundle)
    if not bundle.is_dir():
        raise InputError(f"{bundle}: no such bundle folder")
    manifest = _read_manifest(bundle, table)
    for name, entry in manifest["assets"].items():
        rel = Path(entry["subdir"]) / entry["file"]
        path = bundle / rel
        if not path.is_file():
            raise InputError(f"{bundle}: {name}: {rel} is missing (partial bundle)")
        _check_hashes(f"{bundle}: {name}: {rel}", file_hashes(path), entry)
    return manifest


def _check_hashes(what: str, hashes: dict, entry: dict) -> None:
    for key in ("size", "sha256", "md5"):
        if hashes[key] != entry.get(key):
            raise InputError(
                f"{what}: {key} {hashes[key]} differs from the manifest's {entry.get(key)} "
                "(corrupt or partial file)"
            )


# --- pack ---------------------------------------------------------------------------------------------------
def pack(bundle: Path, archive: Path, table: dict | None = None) -> Path:
    """Verify the bundle, then write it as one uncompressed .tar (weights do not compress), atomically."""
    from workloads.atomic import atomic_write

    manifest = verify(bundle, table)
    bundle = Path(bundle)

    def write(tmp: Path) -> None:
        with tarfile.open(tmp, "w") as tar:
            tar.add(bundle / MANIFEST, arcname=MANIFEST)
            for entry in manifest["assets"].values():
                rel = f"{entry['subdir']}/{entry['file']}"
                tar.add(bundle / rel, arcname=rel)

    return atomic_write(Path(archive), write)


# --- install ------------------------------------------------------------------------------------------------
# All or nothing. Each file is copied from the bundle into one staging folder in the Keras cache while it is
# hashed (what is installed is what was checked, even if the bundle changes meanwhile); only when every file
# matches does commit.json go next to them, and then the renames run with Ctrl-C held back. A rename that
# fails (a folder standing where a file goes, a read-only folder) undoes the ones before it: each file that
# was in the cache was first moved aside into the staging folder (previous/), and goes back. A process killed
# during the renames leaves commit.json: the next install finishes them first. A staging folder without it
# is thrown away. One install at a time per cache (a lock on the folder).
STAGING_PREFIX = ".assets-install-"
COMMIT = "commit.json"
PREVIOUS = "previous"  # in the staging folder: the files the renames replace, until the install is done


class CommitFailed(InputError):
    """A rename of the commit failed. `kept`: it could not be undone, and the staging folder with its journal
    stays for the next `assets install` to finish."""

    def __init__(self, message: str, kept: bool = False) -> None:
        super().__init__(message)
        self.kept = kept


def install(source: Path, home: Path | None = None, table: dict | None = None) -> dict[Path, str]:
    """Verify a bundle (folder or .tar) and put its files into the Keras cache; all or nothing.

    Returns each target path with "installed" or "unchanged" (the same file was already there)."""
    table = asset_table() if table is None else table
    source = Path(source)
    home = Path(home) if home is not None else keras_home()
    if not source.exists():
        raise InputError(f"{source}: no such bundle (folder or .tar)")
    if not source.is_dir() and not source.is_file():  # a FIFO or a device would be read forever
        raise InputError(f"{source}: not a folder or a regular file (a bundle is a folder or a .tar)")
    try:
        home.mkdir(parents=True, exist_ok=True)
        if not home.is_dir():
            raise NotADirectoryError(20, "not a folder")
    except OSError as exc:
        raise InputError(f"Keras cache {home}: cannot use it ({exc.strerror or exc})") from None
    lock_folder(home, "Keras cache")
    recover(home)
    with _open_bundle(source, table) as (manifest, open_member):
        plan = _plan(home, manifest)
        staging, kept = None, False
        try:
            with _signals_held():  # a Ctrl-C now arrives once `staging` is known, inside this try
                staging = _make_staging(home)
            moves = [_stage(open_member, staging, name, entry, source) for name, entry in plan["install"]]
            write_json(staging / COMMIT, {"moves": moves})
            with _signals_held():
                _commit(home, staging, moves)
        except CommitFailed as failed:
            kept = failed.kept
            raise
        finally:
            with _signals_held():
                if staging is not None and not kept:
                    shutil.rmtree(staging, ignore_errors=True)
    done = {home / target: "installed" for _, target in moves}
    done.update({home / target: "unchanged" for target in plan["unchanged"]})
    return dict(sorted(done.items()))


def recover(home: Path) -> None:
    """Finish an install that was killed after its commit point; throw away one killed before it."""
    for staging in sorted(Path(home).glob(f"{STAGING_PREFIX}*")):
        if staging.is_symlink() or not staging.is_dir():
            continue
        moves = _read_commit(staging / COMMIT)
        with _signals_held():
            if moves is not None:
                _commit(home, staging, moves, what="an interrupted install")
            shutil.rmtree(staging, ignore_errors=True)
        if moves is None:
            print(f"removed the staging folder of an interrupted install: {staging}")
        else:
            print(f"finished an interrupted install into {home} ({len(moves)} file(s))")


def _read_commit(path: Path) -> list[list[str]] | None:
    try:
        moves = json.loads(path.read_text())["moves"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    ok = isinstance(moves, list) and all(
        isinstance(m, list) and len(m) == 2 and all(isinstance(p, str) and _safe_rel(p) for p in m)
        for m in moves
    )
    return moves if ok else None


def _safe_rel(rel: str) -> bool:
    parts = Path(rel).parts
    return bool(parts) and not Path(rel).is_absolute() and ".." not in parts


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done (renames, removing the staging folder: instant)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _commit(home: Path, staging: Path, moves: list[list[str]], what: str = "the install") -> None:
    """The renames, all or nothing; call with the signals held. A staged file already gone was renamed before
    a kill. The file a rename replaces is moved aside first, so a failed rename undoes every one before it
    (CommitFailed); if even that fails, the journal stays (CommitFailed.kept) for the next run to finish."""
    undo: list[tuple[Path, Path]] = []  # (where a file is now, where it goes back), in the order they moved
    try:
        for staged, target in moves:
            source, dest = staging / staged, home / target
            if not source.is_file():
                continue
            if dest.is_dir() and not dest.is_symlink():
                raise IsADirectoryError(errno.EISDIR, "a folder stands where the file goes", str(dest))
            if os.path.lexists(dest):
                aside = staging / PREVIOUS / target
                aside.parent.mkdir(parents=True, exist_ok=True)
                os.replace(dest, aside)
                undo.append((aside, dest))
            os.replace(source, dest)
            undo.append((dest, source))
    except OSError as exc:
        why = f"{exc.filename or home}: {exc.strerror or exc}"
        try:
            for now, back in reversed(undo):
                os.replace(now, back)
        except OSError as undo_exc:
            raise CommitFailed(
                f"{what} into {home} stopped half-way ({why}) and could not be undone ({undo_exc.strerror}); "
                f"its journal is kept in {staging}: fix that, then run `assets install` again to finish it",
                kept=True,
            ) from None
        if what == "the install":
            raise CommitFailed(f"the install into {home} failed, nothing installed ({why})") from None
        raise CommitFailed(  # the renames before the kill stay: only going forward makes the cache whole
            f"{what} into {home} could not be finished ({why}); its journal is kept in {staging}: fix that, "
            "then run `assets install` again to finish it",
            kept=True,
        ) from None


def _plan(home: Path, manifest: dict) -> dict:
    """Which assets need installing, and which are already in the cache byte for byte."""
    plan: dict = {"install": [], "unchanged": []}
    for name, entry in manifest["assets"].items():
        target = home / entry["subdir"] / entry["file"]
        rel = f"{entry['subdir']}/{entry['file']}"
        if target.is_file() and not target.is_symlink() and target.stat().st_size == entry["size"]:
            hashes = file_hashes(target)
            if hashes["sha256"] == entry["sha256"] and hashes["md5"] == entry["md5"]:
                plan["unchanged"].append(rel)
                continue
        plan["install"].append((name, entry))
    needed = sum(entry["size"] for _, entry in plan["install"])
    free = shutil.disk_usage(home).free
    if needed > free:
        raise InputError(f"{home}: the bundle needs {needed / 1e9:.2f} GB, {free / 1e9:.2f} GB are free")
    return plan


def _make_staging(home: Path) -> Path:
    try:
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=home))
    except OSError as exc:
        raise InputError(f"Keras cache {home}: cannot write there ({exc.strerror or exc})") from None
    return staging


def _stage(open_member, staging: Path, name: str, entry: dict, source: Path) -> list[str]:
    """Copy one asset into the staging folder while hashing it; a mismatch aborts the install."""
    rel = f"{entry['subdir']}/{entry['file']}"
    staged = staging / "files" / rel
    home = staging.parent
    target_dir = home / entry["subdir"]
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    try:
        target_dir.mkdir(exist_ok=True)
        if os.stat(target_dir).st_dev != os.stat(staging).st_dev:
            raise InputError(f"{target_dir} is on another file system than {home}: no atomic install")
        staged.parent.mkdir(parents=True, exist_ok=True)
        with open_member(rel) as src, open(staged, "xb") as out:
            while chunk := src.read(1 << 20):
                size += len(chunk)
                if size > entry["size"]:
                    raise InputError(f"{source}: {name}: {rel} is longer than the manifest's {entry['size']}")
                sha.update(chunk)
                md5.update(chunk)
                out.write(chunk)
        os.chmod(staged, new_file_mode())
    except (OSError, tarfile.TarError, EOFError, zlib.error) as exc:
        raise InputError(f"install of {rel} into {home} failed, nothing installed ({_why(exc)})") from None
    hashes = {"size": size, "sha256": sha.hexdigest(), "md5": md5.hexdigest()}
    _check_hashes(f"{source}: {name}: {rel}", hashes, entry)
    return [f"files/{rel}", rel]


@contextlib.contextmanager
def _open_bundle(source: Path, table: dict) -> Iterator[tuple[dict, Callable[[str], BinaryIO]]]:
    """The checked manifest of a bundle folder or .tar, and a function that opens one of its files."""
    if source.is_dir():
        manifest = _read_manifest(source, table)
        for name, entry in manifest["assets"].items():
            rel = f"{entry['subdir']}/{entry['file']}"
            path = source / rel
            if not path.is_file():
                raise InputError(f"{source}: {name}: {rel} is missing (partial bundle)")
            if path.stat().st_size != entry["size"]:
                raise InputError(
                    f"{source}: {name}: {rel}: size {path.stat().st_size} differs from the manifest's "
                    f"{entry['size']} (corrupt or partial file)"
                )
        yield manifest, lambda rel: open(source / rel, "rb")  # noqa: SIM115 (the caller closes it)
        return
    try:
        tar = tarfile.open(source, "r:*")  # noqa: SIM115 (closed by the `with tar` below)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{source}: not a readable bundle archive ({_why(exc)})") from None
    with tar:
        try:
            members = _archive_members(tar, source, table)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{source}: not a readable bundle archive ({_why(exc)})") from None
        manifest = members.pop(MANIFEST)

        def open_member(rel: str) -> BinaryIO:
            return tar.extractfile(members[rel])

        yield manifest, open_member


def _archive_members(tar: tarfile.TarFile, source: Path, table: dict) -> dict:
    """Index a bundle .tar without unpacking it: plain files only (no links, devices or sparse files), each
    listed in the manifest with its size, plus the folders above them. Anything else refuses the bundle."""
    members: dict[str, tarfile.TarInfo] = {}
    for m in tar.getmembers():
        name = m.name[2:] if m.name.startswith("./") else m.name
        name = name.rstrip("/")
        if m.name.startswith("/") or ".." in Path(name).parts:
            raise InputError(f"{source}: unsafe member {m.name[:200]!r} (only plain files are allowed)")
        if not (m.isdir() or (m.isreg() and not m.issparse())):
            raise InputError(f"{source}: unsafe member {m.name[:200]!r} (only plain files are allowed)")
        if name in members:
            raise InputError(f"{source}: member {name[:200]!r} appears twice")
        members[name] = m
    info = members.get(MANIFEST)
    if info is None or not info.isreg():
        raise InputError(f"{source}: no {MANIFEST} (not an assets bundle)")
    if info.size > MAX_MANIFEST_BYTES:
        raise InputError(f"{source}: {MANIFEST} larger than {MAX_MANIFEST_BYTES} bytes")
    manifest = _parse_manifest(tar.extractfile(info).read(), f"{source}: {MANIFEST}", table)
    files = {f"{e['subdir']}/{e['file']}": (n, e) for n, e in manifest["assets"].items()}
    folders = {str(p) for rel in files for p in Path(rel).parents} | {""}
    out: dict = {MANIFEST: manifest}
    for name, m in members.items():
        if name == MANIFEST:
            continue
        if m.isdir():
            if name in folders or name == ".":
                continue
            raise InputError(f"{source}: unexpected folder {name[:200]!r} (not in the manifest)")
        if name not in files:
            raise InputError(f"{source}: unexpected file {name[:200]!r} (not in the manifest)")
        asset, entry = files[name]
        if m.size != entry["size"]:
            raise InputError(
                f"{source}: {asset}: {name}: size {m.size} differs from the manifest's {entry['size']} "
                "(corrupt or partial file)"
            )
        out[name] = m
    for rel, (asset, _) in files.items():
        if rel not in out:
            raise InputError(f"{source}: {asset}: {rel} is missing (partial bundle)")
    return out


# --- CLI ----------------------------------------------------------------------------------------------------
def main(args) -> int:
    """`assets` subcommand; errors are InputError (exit 2) and reported by the CLI in one line."""
    action = args.action
    if action == "list":
        for name, spec in asset_table().items():
            pin = "sha256" if spec.get("sha256") else "md5" if spec.get("md5") else "recorded at fetch"
            print(f"{name:28} {spec['subdir']}/{spec['file']}  ({pin})")
        return EXIT_OK
    if action == "fetch":
        manifest = fetch(args.bundle, args.only)
        print(f"fetched {len(manifest['assets'])} asset(s) into {args.bundle}")
        return EXIT_OK
    if action == "verify":
        manifest = verify(args.bundle)
        total = sum(e["size"] for e in manifest["assets"].values())
        print(f"{args.bundle}: {len(manifest['assets'])} asset(s), {total / 1e6:.1f} MB, all hashes match")
        return EXIT_OK
    if action == "pack":
        archive = args.archive or Path(f"{args.bundle}.tar")
        pack(args.bundle, archive)
        print(f"packed {args.bundle} into {archive} ({archive.stat().st_size / 1e6:.1f} MB)")
        return EXIT_OK
    if action == "install":
        for path, what in install(args.archive or args.bundle, args.keras_home).items():
            print(f"{what} {path}")
        return EXIT_OK
    print(f"unknown action {action}", file=sys.stderr)
    return EXIT_BAD_INPUT
