"""The playbook and roles pass ansible-lint's production profile and ansible-playbook --syntax-check."""

from __future__ import annotations

import os
import subprocess

import pytest

from .conftest import ANSIBLE_DIR, REPO

pytestmark = pytest.mark.ansible
BIN = REPO / ".venv" / "bin"


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(argv, cwd=ANSIBLE_DIR, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize("playbook", ["site.yml", "fleet.yml"])
def test_syntax_check(playbook: str) -> None:
    proc = run(str(BIN / "ansible-playbook"), "--syntax-check", playbook)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ansible_lint_production_profile() -> None:
    proc = run(str(BIN / "ansible-lint"), "--profile", "production", "--offline", "site.yml", "fleet.yml")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in proc.stderr + proc.stdout
