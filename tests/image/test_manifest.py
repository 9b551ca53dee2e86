"""The build manifest in the image matches the lock file and names what was installed."""

from __future__ import annotations

import hashlib
import json
import tomllib

import pytest

from .conftest import BUILD_REPORT, ROOT

pytestmark = pytest.mark.image


def locked_version(name: str) -> str:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return next(pkg["version"] for pkg in lock["package"] if pkg["name"] == name)


def test_manifest_matches_the_lock(containers) -> None:
    result = containers.run_to_end(command=["cat", "/opt/keras-workstation/manifest.json"])
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["uv_lock_sha256"] == hashlib.sha256((ROOT / "uv.lock").read_bytes()).hexdigest()
    assert manifest["variant"] == "cpu"
    for name in ("tensorflow", "keras", "jupyterlab", "numpy"):
        assert manifest["packages"][name] == locked_version(name), name
    # The CPU variant carries no CUDA wheels.
    assert not [name for name in manifest["packages"] if name.startswith("nvidia-cu")]
    assert manifest["git_revision"] != "unknown"
    assert manifest["tensorflow_build"]["cuda_version"]


def test_notebooks_are_built_into_the_image(containers) -> None:
    sources = sorted(path.stem for path in (ROOT / "notebooks").glob("*.py"))
    result = containers.run_to_end(command=["ls", "/opt/keras-workstation/notebooks"])
    assert result.returncode == 0, result.stderr
    assert sorted(name.removesuffix(".ipynb") for name in result.stdout.split()) == sources


def test_build_report_records_size_and_time(image) -> None:
    report = json.loads(BUILD_REPORT.read_text())
    assert report["size_bytes"] > 100e6
    assert report["build_seconds"] is None or report["build_seconds"] > 0
    assert report["variant"] == "cpu"
