"""Fixtures for the container image tests: one CPU image per session, containers that always get removed.

The image is the CPU variant built by docker/build.sh on a local Debian 12 base (no registry is reachable in
CI), with podman and the runc runtime (../shared/ENVIRONMENT.md). REUSE=1 skips the build when the build
context is unchanged. Build size and time go to reports/image/build.json and into the terminal summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.jupyter_matrix import free_port

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "reports" / "image"
BUILD_REPORT = REPORTS / "build.json"
TAG = "localhost/keras-workstation:cpu-test"
ENGINE = ["podman", "--runtime", "runc"]
HOST_UID = 1234  # stands in for the host user: CI runs as root, and root-owned files would prove nothing
_built_this_session: dict = {}


def engine(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*ENGINE, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}"
        )
    return result


@pytest.fixture(scope="session")
def image() -> str:
    """Build (or reuse) the CPU image once per session; return its tag."""
    require_tool("podman")
    require_tool("debootstrap")
    env = {
        **os.environ,
        "VARIANT": "cpu",
        "BASE_IMAGE": "local-bookworm",
        "TAG": TAG,
        "REUSE": "1",
        "ENGINE": " ".join(ENGINE),
        "REPORT": str(BUILD_REPORT),
    }
    start = time.monotonic()
    result = subprocess.run(
        [str(ROOT / "docker" / "build.sh")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
    )
    if result.returncode != 0:
        pytest.fail(
            f"image build failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        )
    _built_this_session.update(json.loads(BUILD_REPORT.read_text()))
    _built_this_session["fixture_seconds"] = round(time.monotonic() - start, 1)
    _built_this_session["summary"] = result.stdout.strip().splitlines()[-1]
    return TAG


def pytest_terminal_summary(terminalreporter) -> None:
    if _built_this_session:
        terminalreporter.write_sep("-", "container image")
        terminalreporter.write_line(
            f"{_built_this_session['summary']} (fixture took {_built_this_session['fixture_seconds']} s)"
        )


@dataclass
class TrackedContainer:
    """Runs containers of one image and removes every one it started, whatever the test did."""

    image: str
    started: list[str] = field(default_factory=list)

    def run(self, *args: str, command: list[str] | None = None) -> str:
        """Start a detached container; return its id."""
        cid = engine("run", "-d", *args, self.image, *(command or []), timeout=60).stdout.strip()
        self.started.append(cid)
        return cid

    def run_to_end(
        self, *args: str, command: list[str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        """Run a container to completion (removed afterwards); return its exit status and output."""
        name = f"kw-test-{os.getpid()}-{len(self.started)}"
        self.started.append(name)
        return engine(
            "run", "--name", name, *args, self.image, *(command or []), timeout=timeout, check=False
        )

    def exec(self, cid: str, *command: str) -> str:
        return engine("exec", cid, *command, timeout=60).stdout

    def logs(self, cid: str) -> str:
        result = engine("logs", cid, check=False, timeout=30)
        return result.stdout + result.stderr

    def remove_all(self) -> None:
        for cid in reversed(self.started):
            engine("rm", "-f", "-t", "0", cid, check=False, timeout=60)
        self.started.clear()


@pytest.fixture
def containers(image: str) -> Iterator[TrackedContainer]:
    tracker = TrackedContainer(image)
    try:
        yield tracker
    finally:
        tracker.remove_all()


def host_workdir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A directory to mount as /work, owned by the stand-in host user."""
    path = tmp_path_factory.mktemp(name)
    os.chown(path, HOST_UID, HOST_UID)
    return path


def http_get(url: str, timeout: float = 10) -> tuple[int, str, str]:
    """GET without following redirects: (status, Location header, body)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, response.headers.get("Location", ""), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location", ""), exc.read().decode(errors="replace")


@dataclass
class JupyterServer:
    cid: str
    port: int
    token: str
    workdir: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def jupyter(
    image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[JupyterServer, TrackedContainer]]:
    """One JupyterLab container for a module, run the documented way: --user HOST_UID:HOST_GID."""
    tracker = TrackedContainer(image)
    workdir = host_workdir(tmp_path_factory, "jupyter-work")
    port, token = free_port(), "kw-test-token-0123456789abcdefghijklmnop"
    try:
        cid = tracker.run(
            "--user", f"{HOST_UID}:{HOST_UID}", "-p", f"127.0.0.1:{port}:8888",
            "-e", f"JUPYTER_TOKEN={token}", "-v", f"{workdir}:/work",
        )  # fmt: skip
        server = JupyterServer(cid, port, token, workdir)
        deadline = time.monotonic() + 120
        while True:
            try:
                if http_get(f"{server.base}/api", timeout=3)[0] == 200:
                    break
            except OSError:
                pass
            state = engine("inspect", "--format", "{{.State.Status}}", cid, check=False).stdout.strip()
            if state != "running" or time.monotonic() > deadline:
                pytest.fail(
                    f"JupyterLab did not answer /api (container {state}):\n{tracker.logs(cid)[-3000:]}"
                )
            time.sleep(1)
        yield server, tracker
    finally:
        tracker.remove_all()
