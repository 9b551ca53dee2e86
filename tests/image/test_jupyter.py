"""JupyterLab in the container: token auth, processes, healthcheck, start-up banner."""

from __future__ import annotations

import json
import time

import pytest

from .conftest import HOST_UID, engine, http_get

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
    assert f"http://localhost:8888/lab?token={server.token}" in logs
