"""Role defaults read from the project's one source of a fact, never typed again: uv's version
(pyproject.toml [tool.keras-workstation]), the recommended driver branch and what a GPU is on the PCI bus
(gpu_doctor/rules.toml) and the shortest JupyterLab token (workloads/service/jupyter_auth.py's
MIN_TOKEN_LENGTH)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from gpu_doctor import rules
from workloads.service import jupyter_auth

from .conftest import ANSIBLE_DIR, REPO

pytestmark = pytest.mark.ansible
DEFAULTS = [
    *(ANSIBLE_DIR / "roles" / role / "defaults" / "main.yml" for role in ("python_env", "nvidia_driver")),
    ANSIBLE_DIR / "roles" / "jupyter" / "vars" / "main.yml",
    ANSIBLE_DIR / "roles" / "preflight" / "vars" / "main.yml",
]


def role_defaults(source_dir: Path, distribution: str, tmp_path: Path) -> dict:
    """python_env_uv_version, nvidia_driver_branch and jupyter_token_min_length as the roles compute them for
    `source_dir`."""
    playbook = tmp_path / "show.yml"
    playbook.write_text(
        textwrap.dedent(
            f"""
            - hosts: localhost
              gather_facts: false
              vars_files: {json.dumps([str(path) for path in DEFAULTS])}
              tasks:
                - ansible.builtin.copy:
                    dest: {tmp_path / "facts.json"}
                    content: "{{{{ dict(uv=python_env_uv_version, branch=nvidia_driver_branch,
                                   token=jupyter_token_min_length, vendor=preflight_nvidia_vendor,
                                   display=preflight_display_class_prefix) | to_json }}}}"
                    mode: "0644"
            """
        )
    )
    proc = subprocess.run(
        [REPO / ".venv" / "bin" / "ansible-playbook", "-i", "localhost,", "-c", "local", str(playbook),
         "-e", f"workstation_source_dir={source_dir}", "-e", f"ansible_distribution={distribution}",
         "-e", "ansible_python_interpreter=/usr/bin/python3"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((tmp_path / "facts.json").read_text())


def test_defaults_are_the_project_facts(tmp_path: Path) -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    uv_pin = next(line for line in pyproject.splitlines() if line.startswith("uv-version"))
    facts = role_defaults(REPO, "Ubuntu", tmp_path)
    assert uv_pin == f'uv-version = "{facts["uv"]}"'
    assert int(facts["branch"]) == rules.recommended_branch()
    assert int(facts["token"]) == jupyter_auth.MIN_TOKEN_LENGTH
    hardware = rules.rules()["hardware"]
    assert (facts["vendor"], facts["display"]) == (
        hardware["nvidia_vendor"],
        hardware["display_class_prefix"],
    )


def test_defaults_follow_an_edited_source(tmp_path: Path) -> None:
    """Negative control: change the facts in a copy of the sources and the defaults change with them."""
    source = tmp_path / "source"
    (source / "gpu_doctor").mkdir(parents=True)
    text = (REPO / "pyproject.toml").read_text()
    (source / "pyproject.toml").write_text(text.replace('\nuv-version = "', '\nuv-version = "9.9.9-was-'))
    shutil.copy(rules.RULES_FILE, source / "gpu_doctor" / "rules.toml")
    toml = source / "gpu_doctor" / "rules.toml"
    edited = toml.read_text().replace("\nrecommended_branch = ", "\nrecommended_branch = 9")
    toml.write_text(
        edited.replace('\nnvidia_vendor = "', '\nnvidia_vendor = "9').replace(
            '\ndisplay_class_prefix = "', '\ndisplay_class_prefix = "9'
        )
    )
    auth = source / "workloads" / "service" / "jupyter_auth.py"
    auth.parent.mkdir(parents=True)
    rule = Path(jupyter_auth.__file__).read_text()
    auth.write_text(rule.replace("\nMIN_TOKEN_LENGTH = ", "\nMIN_TOKEN_LENGTH = 9"))
    facts = role_defaults(source, "Ubuntu", tmp_path)
    assert facts["uv"].startswith("9.9.9-was-")
    assert facts["branch"] == f"9{rules.recommended_branch()}"
    assert int(facts["token"]) == int(f"9{jupyter_auth.MIN_TOKEN_LENGTH}")
    hardware = rules.rules()["hardware"]
    assert (facts["vendor"], facts["display"]) == (
        f"9{hardware['nvidia_vendor']}",
        f"9{hardware['display_class_prefix']}",
    )
    # Debian 12 carries one branch, whatever the recommendation
    assert role_defaults(source, "Debian", tmp_path)["branch"] == "535"
