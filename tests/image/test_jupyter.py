"""JupyterLab in the container: token auth, processes, healthcheck, start-up banner."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.jupyter_matrix import password_login_status

from .conftest import ENGINE, HOST_UID, ROOT, engine, free_port, host_workdir, http_get

pytestmark = pytest.mark.image


def test_api_needs_the_token(jupyter) -> None:
    server, _ = jupyter
    # /api/status needs a login; /api itself (the version) is open by design and is what the healthcheck asks.
    status, _, body = http_get(f"{server.base}/api/status?token={server.token}")
    assert status == 200, body
    assert "started" in json.loads(body)
    assert http_get(f"{server.base}/api/status")[0] == 403
    assert http_get(f"{server.base}/api/status?token=wrong-{server.token}")[0] == 403
    assert http_get(f"{server.base}/api/contents", timeout=10)[0] == 403


def test_lab_without_token_redirects_to_login(jupyter) -> None:
    server, _ = jupyter
    status, location, _ = http_get(f"{server.base}/lab")
    assert status == 302 and location.startswith("/login"), (status, location)
    status, _, body = http_get(f"{server.base}{location}")
    assert status == 200 and 'type="password"' in body


def test_pid1_is_tini_and_server_is_not_root(jupyter) -> None:
    server, tracker = jupyter
    pid1 = tracker.exec(server.cid, "cat", "/proc/1/cmdline").split("\0")
    assert pid1[0] == "/usr/bin/tini", pid1
    # Every process's real uid and command line, read from /proc inside the container.
    table = tracker.exec(
        server.cid, "python", "-c",
        "import os\n"
        "for p in filter(str.isdigit, os.listdir('/proc')):\n"
        "    try:\n"
        "        uid = open(f'/proc/{p}/status').read().split('Uid:')[1].split()[0]\n"
        "        cmd = open(f'/proc/{p}/cmdline').read().replace(chr(0), ' ')\n"
        "    except OSError:\n"
        "        continue\n"
        "    print(p, uid, cmd)",
    )  # fmt: skip
    servers = [
        line.split(maxsplit=2)
        for line in table.splitlines()
        if "jupyter-lab" in line or "jupyter lab" in line
    ]
    assert servers, table
    assert all(uid == str(HOST_UID) for _, uid, _ in servers), servers


def test_healthcheck_turns_healthy(jupyter) -> None:
    server, _ = jupyter
    # No systemd timers drive healthchecks here, so run the image's HEALTHCHECK command as the engine would.
    deadline = time.monotonic() + 60
    while engine("healthcheck", "run", server.cid, check=False).returncode != 0:
        assert time.monotonic() < deadline, "healthcheck never passed"
        time.sleep(2)
    health = engine("inspect", "--format", "{{json .State.Health}}", server.cid).stdout
    assert json.loads(health)["Status"] == "healthy", health


def test_banner_says_why_no_gpu_and_prints_the_url(jupyter) -> None:
    server, tracker = jupyter
    logs = tracker.logs(server.cid)
    assert "[keras-workstation] GPU: not used: this is the CPU variant" in logs, logs[-2000:]
    assert "http://localhost:8888/lab" in logs and server.token not in logs  # a log is no place for a token


def wait_for_api(base: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http_get(f"{base}/api", timeout=3)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"{base}/api never answered")


def test_hashed_password_logs_in_and_the_token_still_works(containers, tmp_path_factory) -> None:
    from jupyter_server.auth import passwd

    port, token = free_port(), "kw-test-token-password-case-0123456789"
    work = host_workdir(tmp_path_factory, "password")
    cid = containers.run(
        "--user", f"{HOST_UID}:{HOST_UID}", "-p", f"127.0.0.1:{port}:8888", "-v", f"{work}:/work",
        "-e", f"JUPYTER_TOKEN={token}", "-e", f"JUPYTER_PASSWORD_HASH={passwd('correct horse')}",
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_api(base)
    except AssertionError:
        pytest.fail(containers.logs(cid)[-3000:])
    assert password_login_status(base, "wrong horse") == 401
    assert password_login_status(base, "correct horse") == 200
    assert http_get(f"{base}/api/status?token={token}")[0] == 200
    assert http_get(f"{base}/api/status")[0] == 403


def test_make_jupyter_script_prints_a_working_url(containers, tmp_path_factory) -> None:
    port, name = free_port(), f"kw-test-run-jupyter-{os.getpid()}"
    work = host_workdir(tmp_path_factory, "make-jupyter")
    token_file = tmp_path_factory.mktemp("make-jupyter-token") / "jupyter-token"  # made by the script
    containers.started.append(name)  # removed by the fixture whatever happens
    env = {**os.environ, "IMAGE": containers.image, "JUPYTER_PORT": str(port), "NAME": name,
           "ENGINE": " ".join(ENGINE), "WORKDIR": str(work),
           "JUPYTER_TOKEN_FILE": str(token_file)}  # fmt: skip
    script = str(ROOT / "docker" / "run-jupyter.sh")
    result = subprocess.run([script], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    urls = [line.split(": ", 1)[1] for line in result.stdout.splitlines() if line.startswith("JupyterLab: ")]
    assert len(urls) == 1, result.stdout
    url = urls[0]
    assert url.startswith(f"http://127.0.0.1:{port}/lab?token=")
    token = url.split("token=", 1)[1]
    assert len(token) >= 32
    assert http_get(f"http://127.0.0.1:{port}/api/status?token={token}")[0] == 200
    assert "GPU: not used: this is the CPU variant" in result.stdout
    # Started by root (CI), the server dropped to the owner of the mounted directory.
    assert (work / "notebooks").stat().st_uid == HOST_UID
