"""Offline assets for air-gapped machines: `python -m workloads assets fetch|verify|pack|install|list`.

fetch   (with internet) download the assets of `assets.toml` into a bundle folder with manifest.json
verify  every file of the manifest is there, with its size and hashes (and the hash Keras pins, if any)
pack    verify, then write the bundle as one .tar
install verify a bundle (folder or .tar), then put its files into the Keras cache ($KERAS_HOME, else ~/.keras)

Nothing is half-installed: everything is verified and staged next to its target first; only then are the
staged files renamed into place. No Keras import: this works on a machine without a backend set up.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

from workloads.atomic import write_json
from workloads.backend import keras_home
from workloads.errors import InputError
from workloads.results import now

ASSETS_FILE = Path(__file__).with_name("assets.toml")
MANIFEST = "manifest.json"
FORMAT = 1


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
    manifest = _read_manifest(bundle) if (bundle / MANIFEST).is_file() else _empty_manifest()
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
            raise InputError(f"{name}: download from {spec['url']} failed ({exc})") from None
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


def _read_manifest(bundle: Path) -> dict:
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        raise InputError(f"{bundle}: no {MANIFEST} (not an assets bundle)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or "assets" not in manifest:
        raise InputError(f"{path}: not an assets manifest of format {FORMAT}")
    return manifest


# --- verify -------------------------------------------------------------------------------------------------
def verify(bundle: Path, table: dict | None = None) -> dict:
    """Check each file of the manifest (exists, size, sha256, md5, pinned hash); fail at the first problem."""
    table = asset_table() if table is None else table
    bundle = Path(bundle)
    if not bundle.is_dir():
        raise InputError(f"{bundle}: no such bundle folder")
    manifest = _read_manifest(bundle)
    if not manifest["assets"]:
        raise InputError(f"{bundle}: the manifest lists no assets")
    for name, entry in manifest["assets"].items():
        rel = Path(entry["subdir"]) / entry["file"]
        if rel.is_absolute() or ".." in rel.parts or entry["subdir"] not in ("datasets", "models"):
            raise InputError(f"{bundle}: {name}: unsafe path {rel} in the manifest")
        path = bundle / rel
        if not path.is_file():
            raise InputError(f"{bundle}: {name}: {rel} is missing (partial bundle)")
        hashes = file_hashes(path)
        for key in ("size", "sha256", "md5"):
            if hashes[key] != entry.get(key):
                raise InputError(
                    f"{bundle}: {name}: {rel}: {key} {hashes[key]} differs from the manifest's "
                    f"{entry.get(key)} (corrupt or partial file)"
                )
        if name in table and (problem := pinned_mismatch(name, table[name], hashes)):
            raise InputError(f"{bundle}: {problem}")
    return manifest


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
def install(source: Path, home: Path | None = None, table: dict | None = None) -> list[Path]:
    """Verify a bundle (folder or .tar) and put its files into the Keras cache; all or nothing."""
    source = Path(source)
    home = Path(home) if home is not None else keras_home()
    if not source.exists():
        raise InputError(f"{source}: no such bundle (folder or .tar)")
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home, prefix=".assets-install-") as work:
        bundle = Path(work) / "bundle"
        if source.is_dir():
            bundle = source
        else:
            _extract(source, bundle)
        manifest = verify(bundle, table)
        staged: list[tuple[Path, Path]] = []
        try:
            for entry in manifest["assets"].values():
                target = home / entry["subdir"] / entry["file"]
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
                os.close(fd)
                staged.append((Path(tmp), target))
                shutil.copyfile(bundle / entry["subdir"] / entry["file"], tmp)
        except OSError as exc:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            raise InputError(f"install into {home} failed, nothing installed ({exc})") from None
        for tmp, target in staged:  # everything is staged and verified: commit
            os.replace(tmp, target)
    return [target for _, target in staged]


def _extract(archive: Path, dest: Path) -> None:
    """Extract a bundle .tar safely (no absolute paths, links or devices); a broken archive is one error."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for m in members:  # Python 3.11.2 has no extraction filters: check by hand
                parts = Path(m.name).parts
                if not (m.isfile() or m.isdir()) or m.name.startswith("/") or ".." in parts:
                    raise InputError(f"{archive}: unsafe member {m.name!r} (only plain files are allowed)")
            tar.extractall(dest, members=members)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InputError(f"{archive}: not a readable bundle archive ({exc})") from None


# --- CLI ----------------------------------------------------------------------------------------------------
def main(args) -> int:
    """`assets` subcommand; errors are InputError (exit 2) and reported by the CLI in one line."""
    action = args.action
    if action == "list":
        for name, spec in asset_table().items():
            pin = "sha256" if spec.get("sha256") else "md5" if spec.get("md5") else "recorded at fetch"
            print(f"{name:28} {spec['subdir']}/{spec['file']}  ({pin})")
        return 0
    if action == "fetch":
        manifest = fetch(args.bundle, args.only)
        print(f"fetched {len(manifest['assets'])} asset(s) into {args.bundle}")
        return 0
    if action == "verify":
        manifest = verify(args.bundle)
        total = sum(e["size"] for e in manifest["assets"].values())
        print(f"{args.bundle}: {len(manifest['assets'])} asset(s), {total / 1e6:.1f} MB, all hashes match")
        return 0
    if action == "pack":
        archive = args.archive or Path(f"{args.bundle}.tar")
        pack(args.bundle, archive)
        print(f"packed {args.bundle} into {archive} ({archive.stat().st_size / 1e6:.1f} MB)")
        return 0
    if action == "install":
        installed = install(args.archive or args.bundle, args.keras_home)
        for path in installed:
            print(f"installed {path}")
        return 0
    print(f"unknown action {action}", file=sys.stderr)
    return 2
