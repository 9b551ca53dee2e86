"""The authentication matrix of the image and of `make jupyter` (docker/run-jupyter.sh): no token, an empty,
a blank or a wrong one get 403, or the server refuses to start; only the credential opens it. The token is
never on a command line, in `inspect`, or in the container log; a root start never stays root."""

from __future__ import annotations

import json
import os
import subprocess
import time
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

from .conftest import ENGINE, HOST_UID, ROOT, TrackedContainer, engine, host_workdir

pytestmark = pytest.mark.image
TOKEN = "kw-image-token-0123456789abcdefghijklmnop"
SECRET = "/run/keras-workstation/jupyter-token"


def serve(containers: TrackedContainer, *args: str, command: list[str] | None = None) -> tuple[str, str, str]:
    """Start JupyterLab; (container id, base URL, "serving" or "exited" with its log)."""
    port = free_port()
    cid = containers.run("-p", f"127.0.0.1:{port}:8888", *args, command=command)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if request("GET", f"{base}/api") == 200:
                return cid, base, "serving"
        except OSError:
            pass
        state = engine("inspect", "--format", "{{.State.Status}}", cid, check=False).stdout.strip()
        if state != "running":
            return cid, base, "exited"
        time.sleep(1)
    pytest.fail(f"neither served nor exited in 180 s:\n{containers.logs(cid)[-3000:]}")


def exit_code(cid: str) -> int:
    return int(engine("inspect", "--format", "{{.State.ExitCode}}", cid).stdout.strip())


def secret_file(tmp_path: Path, content: str, name: str = "jupyter-token") -> Path:
    path = tmp_path / name
    path.write_text(content)
    path.chmod(0o600)
    os.chown(path, HOST_UID, HOST_UID)
    return path


@pytest.mark.parametrize(
    ("args", "token_file"),
    [(("-e", "JUPYTER_TOKEN="), None), (("-e", "JUPYTER_TOKEN=   "), None), ((), ""), ((), " \n\t"),
     (("-e", "JUPYTER_TOKEN=x"), None), (("-e", "JUPYTER_TOKEN=\u200b"), None), ((), "\u200b\n")],
    ids=["env-empty", "env-blank", "file-empty", "file-blank", "env-one-character", "env-zero-width-space",
         "file-zero-width-space"],
)  # fmt: skip
def test_an_empty_blank_or_weak_credential_refuses_to_start(containers, tmp_path, args, token_file) -> None:
    if token_file is not None:
        path = secret_file(tmp_path, token_file)
        args = ("-v", f"{path}:{SECRET}:ro", "-e", f"JUPYTER_TOKEN_FILE={SECRET}")
    cid, _, state = serve(containers, "--user", f"{HOST_UID}:{HOST_UID}", *args)
    logs = containers.logs(cid)
    assert state == "exited", f"started without a credential:\n{logs[-3000:]}"
    assert_refused(exit_code(cid), logs)


def test_a_command_line_cannot_empty_the_token(containers) -> None:
    cid, _, state = serve(
        containers, "--user", f"{HOST_UID}:{HOST_UID}", "-e", f"JUPYTER_TOKEN={TOKEN}",
        command=["jupyter", "--IdentityProvider.token="],
    )  # fmt: skip
    assert state == "exited", containers.logs(cid)[-3000:]
    assert_refused(exit_code(cid), containers.logs(cid))


def test_the_token_opens_it_and_nothing_else(jupyter) -> None:
    server, tracker = jupyter
    assert_only_the_token_opens(server.base, server.token)
    logs = tracker.logs(server.cid)
    assert DISABLED not in logs and server.token not in logs, "the log must not show the token"


def test_a_generated_token_is_not_logged_and_works(containers, tmp_path_factory) -> None:
    """No credential given: a token is generated; `jupyter server list` in the container shows it."""
    work = host_workdir(tmp_path_factory, "generated-token")
    cid, base, state = serve(containers, "--user", f"{HOST_UID}:{HOST_UID}", "-v", f"{work}:/work")
    assert state == "serving", containers.logs(cid)[-3000:]
    listing = containers.exec(cid, "jupyter", "server", "list", "--json")
    token = json.loads(listing.splitlines()[0])["token"]
    assert len(token) >= 32
    assert_only_the_token_opens(base, token)
    logs = containers.logs(cid)
    assert token not in logs and "jupyter server list" in logs and DISABLED not in logs


def test_a_root_start_with_a_token_file_drops_to_the_user_and_never_to_uid_0(containers, tmp_path) -> None:
    """`--user root` with NB_UID=00 and NB_GID=0 (uid and group 0 written another way): the server runs as
    1000:1000, and the token file (0600, another owner) is handed over to it."""
    path = secret_file(tmp_path, TOKEN + "\n")
    cid, base, state = serve(
        containers, "--user", "root", "-e", "NB_UID=00", "-e", "NB_GID=0",
        "-v", f"{path}:{SECRET}:ro", "-e", f"JUPYTER_TOKEN_FILE={SECRET}",
    )  # fmt: skip
    assert state == "serving", containers.logs(cid)[-3000:]
    assert_only_the_token_opens(base, TOKEN)
    uid_gid = containers.exec(
        cid, "python", "-c",
        "import os\nfor p in filter(str.isdigit, os.listdir('/proc')):\n"
        "    c = open(f'/proc/{p}/cmdline').read()\n"
        "    if 'jupyter' in c and 'lab' in c:\n"
        "        s = open(f'/proc/{p}/status').read()\n"
        "        print(s.split('Uid:')[1].split()[0], s.split('Gid:')[1].split()[0])",
    ).split()  # fmt: skip
    assert uid_gid[:2] == ["1000", "1000"], uid_gid


@pytest.mark.parametrize(("nb_uid", "nb_gid"), [("00", "0"), ("0", "00"), ("000", "1234"), ("1234", "0000")])
def test_the_root_guard_compares_numbers(containers, nb_uid, nb_gid) -> None:
    """uid 0 or group 0 written as "00" once ran the container as root."""
    result = containers.run_to_end(
        "--user",
        "root",
        "-e",
        f"NB_UID={nb_uid}",
        "-e",
        f"NB_GID={nb_gid}",
        command=["sh", "-c", "id -u; id -g"],
    )
    assert result.returncode == 0, result.stderr
    uid, gid = result.stdout.split()[-2:]
    assert uid != "0" and gid != "0", result.stdout
    assert (uid, gid) == ("1000" if int(nb_uid) == 0 else nb_uid, "1000" if int(nb_gid) == 0 else nb_gid)


def test_a_password_hash_alone_opens_it_by_login_only(containers) -> None:
    from jupyter_server.auth import passwd

    cid, base, state = serve(
        containers,
        "--user",
        f"{HOST_UID}:{HOST_UID}",
        "-e",
        f"JUPYTER_PASSWORD_HASH={passwd('correct horse')}",
    )
    assert state == "serving", containers.logs(cid)[-3000:]
    assert_only_the_token_opens(base, None)
    assert password_login_status(base, "wrong horse") == 401
    assert password_login_status(base, "correct horse") == 200
    assert DISABLED not in containers.logs(cid)


# --- make jupyter (docker/run-jupyter.sh) ---------------------------------------------------------------
def run_jupyter(
    containers, tmp_path_factory, **settings: str
) -> tuple[subprocess.CompletedProcess, str, int]:
    port, name = free_port(), f"kw-test-run-jupyter-{os.getpid()}-{len(containers.started)}"
    work = host_workdir(tmp_path_factory, "make-jupyter")
    containers.started.append(name)  # removed by the fixture whatever happens
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_")},
        "IMAGE": containers.image,
        "JUPYTER_PORT": str(port),
        "NAME": name,
        "ENGINE": " ".join(ENGINE),
        "WORKDIR": str(work),
        **settings,
    }
    script = str(ROOT / "docker" / "run-jupyter.sh")
    return subprocess.run([script], env=env, capture_output=True, text=True, timeout=240), name, port


def test_make_jupyter_keeps_the_token_off_command_lines(containers, tmp_path, tmp_path_factory) -> None:
    token_file = tmp_path / "config" / "jupyter-token"  # missing: the script makes it
    result, name, port = run_jupyter(containers, tmp_path_factory, JUPYTER_TOKEN_FILE=str(token_file))
    assert result.returncode == 0, result.stdout + result.stderr
    token = token_file.read_text().strip()
    assert len(token) >= 32 and token_file.stat().st_mode & 0o777 == 0o600
    assert f"http://127.0.0.1:{port}/lab?token={token}" in result.stdout
    assert_only_the_token_opens(f"http://127.0.0.1:{port}", token)
    inspect = engine("inspect", name).stdout
    assert token not in inspect, "the token is in the engine's inspect output (its command line or env)"
    assert token not in containers.logs(name)
    commands = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert token not in commands


@pytest.mark.parametrize("content", ["", "  \n", "x\n"], ids=["empty", "blank", "one-character"])
def test_make_jupyter_with_an_empty_token_file_refuses(
    containers, tmp_path, tmp_path_factory, content
) -> None:
    token_file = secret_file(tmp_path, content)
    result, name, _ = run_jupyter(containers, tmp_path_factory, JUPYTER_TOKEN_FILE=str(token_file))
    assert result.returncode != 0
    assert_refused(exit_code(name), containers.logs(name))
    assert DISABLED not in result.stdout + result.stderr


def test_make_jupyter_refuses_a_token_in_the_environment(containers, tmp_path_factory) -> None:
    result, _, _ = run_jupyter(containers, tmp_path_factory, JUPYTER_TOKEN=TOKEN)
    assert result.returncode == 2 and "JUPYTER_TOKEN_FILE" in result.stderr, result.stderr


def test_make_jupyter_with_a_password_hash_file(containers, tmp_path, tmp_path_factory) -> None:
    from jupyter_server.auth import passwd

    token_file = secret_file(tmp_path, TOKEN)
    hash_file = secret_file(tmp_path, passwd("correct horse"), "jupyter-password-hash")
    result, _, port = run_jupyter(
        containers,
        tmp_path_factory,
        JUPYTER_TOKEN_FILE=str(token_file),
        JUPYTER_PASSWORD_HASH_FILE=str(hash_file),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    base = f"http://127.0.0.1:{port}"
    assert_only_the_token_opens(base, TOKEN)
    assert password_login_status(base, "wrong horse") == 401
    assert password_login_status(base, "correct horse") == 200
