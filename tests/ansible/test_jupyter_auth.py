"""The JupyterLab config the Ansible role renders, started for real: the authentication matrix.

The template is rendered by Ansible itself (ansible.builtin.template, the role's own file) with the paths it
would get on a machine, then JupyterLab of this checkout's .venv is started with it, as the unit's ExecStart
would. Missing, empty and blank token files, a command line that empties the token and a malformed password
hash must refuse to start, and so must a weak token (one character, an invisible U+200B or U+FEFF); a token or
a password hash must open it to that credential only. (The converged
chroot, tests/ansible/test_cpu_path.py, checks the same service started from its unit.)
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.jupyter_matrix import (
    DISABLED,
    assert_only_the_token_opens,
    assert_refused,
    free_port,
    password_login_status,
    request,
)

from .conftest import ANSIBLE_DIR, REPO

pytestmark = pytest.mark.slow
BIN = REPO / ".venv" / "bin"
TOKEN = "kw-ansible-token-0123456789abcdefghijklmnopqrstuv"


@dataclass
class Rendered:
    config: Path
    token: Path
    password_hash: Path
    root: Path
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    where = tmp_path_factory.mktemp("jupyter-config")
    (where / "notebooks").mkdir()
    port = free_port()
    variables = {
        "workstation_source_dir": str(REPO),
        "jupyter_auth_module": str(REPO / "workloads" / "service" / "jupyter_auth.py"),
        "jupyter_service_name": "jupyterlab",
        "jupyter_user": "researcher",
        "jupyter_ip": "127.0.0.1",
        "jupyter_port": port,
        "jupyter_root_path": str(where / "notebooks"),
        "jupyter_token_path": str(where / "jupyter-token"),
        "jupyter_password_hash_path": str(where / "jupyter-password-hash"),
    }
    template = ANSIBLE_DIR / "roles" / "jupyter" / "templates" / "jupyter_server_config.py.j2"
    proc = subprocess.run(
        [str(BIN / "ansible"), "localhost", "-c", "local", "-i", "localhost,",
         "-m", "ansible.builtin.template", "-a", f"src={template} dest={where / 'jupyter_server_config.py'}",
         "-e", json.dumps(variables)],
        cwd=ANSIBLE_DIR, capture_output=True, text=True, timeout=300,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_BECOME": "false"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return Rendered(
        where / "jupyter_server_config.py", where / "jupyter-token", where / "jupyter-password-hash",
        where / "notebooks", port,
    )  # fmt: skip


def credentials(rendered: Rendered, token: str | None, password_hash: str | None = None) -> None:
    for path, value in ((rendered.token, token), (rendered.password_hash, password_hash)):
        path.unlink(missing_ok=True)
        if value is not None:
            path.write_text(value)
            path.chmod(0o600)


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen]]:
    """Every server a test starts is stopped afterwards, also one that should have refused and did not."""
    started: list[subprocess.Popen] = []
    yield started
    for server in started:
        stop(server)


def start(rendered: Rendered, servers: list, *args: str) -> tuple[subprocess.Popen, str]:
    """ExecStart of the unit (plus --allow-root: the tests run as root); waits until it answers or exits."""
    server = subprocess.Popen(
        [str(BIN / "jupyter-lab"), f"--config={rendered.config}", "--allow-root", *args],
        cwd=rendered.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")},
    )  # fmt: skip
    servers.append(server)
    deadline = time.monotonic() + 120
    while server.poll() is None and time.monotonic() < deadline:
        try:
            if request("GET", f"{rendered.base}/api") == 200:
                return server, ""
        except OSError:
            pass
        time.sleep(0.5)
    output = stop(server)
    return server, output


def stop(server: subprocess.Popen) -> str:
    if server.poll() is None:
        server.terminate()
    elif server.stdout is None or server.stdout.closed:
        return ""
    try:
        output, _ = server.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        output, _ = server.communicate()
    return output


@pytest.mark.parametrize(
    ("token", "args"),
    [(None, ()), ("", ()), (" \n\t\n", ()), ("\u200b\n", ()), ("\ufeff", ()), ("x\n", ()),
     (TOKEN, ("--IdentityProvider.token=",)), (TOKEN, ("--IdentityProvider.token= ",)),
     (TOKEN, ("--IdentityProvider.token=x",))],
    ids=["token-file-missing", "token-file-empty", "token-file-blank", "token-file-zero-width-space",
         "token-file-byte-order-mark", "token-file-one-character", "command-line-empties-it",
         "command-line-blanks-it", "command-line-weakens-it"],
)  # fmt: skip
def test_no_credential_refuses_to_start(rendered: Rendered, servers, token: str | None, args: tuple) -> None:
    credentials(rendered, token)
    server, output = start(rendered, servers, *args)
    assert_refused(server.returncode, output)


def test_a_malformed_password_hash_refuses_to_start(rendered: Rendered, servers) -> None:
    credentials(rendered, "", "not-a-hash")
    server, output = start(rendered, servers)
    assert_refused(server.returncode, output)
    assert "is not a Jupyter password hash" in output


def test_the_token_opens_it_and_nothing_else(rendered: Rendered, servers) -> None:
    credentials(rendered, TOKEN + "\n")
    server, output = start(rendered, servers)
    assert server.poll() is None, f"did not start:\n{output[-3000:]}"
    try:
        assert_only_the_token_opens(rendered.base, TOKEN)
        assert (rendered.root / "kw-auth-check.txt").read_text() == "written with the token"
        assert not (rendered.root / "kw-pwned.txt").exists()
    finally:
        output = stop(server)
    assert DISABLED not in output and TOKEN not in output, "the log must not show the token"


def test_a_password_hash_alone_opens_it_by_login_only(rendered: Rendered, servers) -> None:
    from jupyter_server.auth import passwd

    credentials(rendered, "", passwd("correct horse"))
    server, output = start(rendered, servers)
    assert server.poll() is None, f"did not start:\n{output[-3000:]}"
    try:
        assert_only_the_token_opens(rendered.base, None)
        assert password_login_status(rendered.base, "wrong horse") == 401
        assert password_login_status(rendered.base, "correct horse") == 200
    finally:
        output = stop(server)
    assert DISABLED not in output
