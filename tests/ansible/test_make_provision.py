"""`make provision` checks the controller's Python against pyproject.toml's requires-python before it builds
the Ansible environment from uv.lock (Ubuntu 22.04's python3 is 3.10): one line, exit 2, nothing built.

The interpreters are stand-ins: the system Python told to report another version, since no other CPython is
installed here. UV=/bin/true keeps the accepted case from installing Ansible (the check is what is tested).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

STAND_IN = """#!/bin/sh
# python3 that reports Python {version}: runs `-c CODE` with sys.version_info replaced.
exec {python} -c 'import sys; code = sys.argv[1]; sys.executable = "'"$0"'"; \\
sys.version_info = ({major}, {minor}, 12, "final", 0); sys.version = "{version} (stand-in)"; exec(code)' "$2"
"""


def stand_in_python(folder: Path, major: int, minor: int) -> Path:
    path = folder / f"python{major}.{minor}"
    version = f"{major}.{minor}.12"
    path.write_text(STAND_IN.format(python=sys.executable, version=version, major=major, minor=minor))
    path.chmod(0o755)
    return path


def make_ansible_venv(tmp_path: Path, python: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    venv = tmp_path / "ansible-venv"
    venv.mkdir(exist_ok=True)
    argv = ["make", f"{venv}/.synced", f"ANSIBLE_VENV={venv}", f"PYTHON_SYSTEM={python}", "UV=/bin/true"]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    return proc, venv / ".synced"


@pytest.mark.parametrize(("major", "minor"), [(3, 10), (3, 14)])
def test_unsupported_controller_python_is_refused_before_uv(tmp_path: Path, major: int, minor: int) -> None:
    python = stand_in_python(tmp_path, major, minor)
    proc, synced = make_ansible_venv(tmp_path, python)
    assert proc.returncode == 2, proc
    message = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(message) == 1, proc.stderr
    assert f"{python} is {major}.{minor}.12" in message[0] and "python3.12-venv" in message[0], message
    assert "/bin/true sync" not in proc.stdout and not synced.exists(), proc


def test_supported_controller_python_goes_on_to_uv(tmp_path: Path) -> None:
    python = stand_in_python(tmp_path, 3, 12)
    proc, synced = make_ansible_venv(tmp_path, python)
    assert proc.returncode == 0, proc
    assert f"/bin/true sync --frozen --only-group dev --python {python}" in proc.stdout and synced.exists()
