"""Fixtures that provision fresh Debian 12 rootfs trees through the community.general.chroot connection.

One CPU-path rootfs and one GPU-path rootfs (dummy driver and toolkit packages) are converged once per
session and shared by the tests; a third, never-provisioned rootfs serves the check-mode and refusal tests.
Timings of the converges go to reports/ansible/timings.json and to the end of the pytest output.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import testinfra

from tests.conftest import require, require_tool

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
PLAYBOOK_BIN = REPO / ".venv" / "bin" / "ansible-playbook"
USER = "researcher"
# Sources python_env installs; snapshotted so parallel edits of the checkout cannot make a re-run "changed".
SOURCE_PATHS = ["pyproject.toml", "uv.lock", "README.md", "workloads", "smoke_tests", "gpu_doctor"]
TIMINGS_FILE = REPO / "reports" / "ansible" / "timings.json"
# Every play's full output (a failed assertion shows only its end): reports/ansible/plays/<rootfs>-<n>.log
PLAY_LOGS = REPO / "reports" / "ansible" / "plays"
TIMINGS: dict[str, float] = {}
RECAP = re.compile(
    r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)", re.M
)


@dataclass
class PlayResult:
    rc: int
    output: str
    seconds: float
    recap: dict[str, int] = field(default_factory=dict)

    @property
    def flat(self) -> str:
        """The output with whitespace runs collapsed (the YAML callback wraps long messages)."""
        return " ".join(self.output.split())

    def __repr__(self) -> str:  # what pytest shows in a failed assertion: the end of the play's output
        return f"rc={self.rc} recap={self.recap} in {self.seconds:.1f} s\n{self.output[-6000:]}"


@dataclass
class Rootfs:
    root: Path
    name: str
    inventory: Path
    plays: int = 0

    def sh(
        self, command: str, check: bool = True, user: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command inside the rootfs."""
        argv = [
            "chroot",
            *([f"--userspec={user}:{user}"] if user else []),
            str(self.root),
            "/bin/sh",
            "-c",
            command,
        ]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8"}
        if user:
            env["HOME"] = f"/home/{user}"
        return subprocess.run(argv, capture_output=True, text=True, check=check, env=env, timeout=900)

    def play(
        self, *args: str, extra: dict[str, object] | None = None, timing: str | None = None
    ) -> PlayResult:
        """Run site.yml against this rootfs; extra vars go in as JSON so booleans stay booleans."""
        variables = {"workstation_user": USER, **(extra or {})}
        argv = [str(PLAYBOOK_BIN), "-i", str(self.inventory), "site.yml", "-e", json.dumps(variables), *args]
        env = {
            **os.environ,
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
            "TMPDIR": str(self.root.parent),
        }
        start = time.monotonic()
        proc = subprocess.run(argv, cwd=ANSIBLE_DIR, capture_output=True, text=True, env=env, timeout=1800)
        seconds = time.monotonic() - start
        output = proc.stdout + proc.stderr
        PLAY_LOGS.mkdir(parents=True, exist_ok=True)
        self.plays += 1
        log = PLAY_LOGS / f"{self.name}-{self.plays}.log"
        log.write_text(f"$ {' '.join(argv)}\n\n{output}")
        recap = {}
        if match := RECAP.search(output):
            keys = ["ok", "changed", "unreachable", "failed", "skipped"]
            recap = dict(zip(keys, map(int, match.groups()[1:]), strict=True))
        if timing:
            TIMINGS[timing] = round(seconds, 1)
        return PlayResult(proc.returncode, output, seconds, recap)


def manifest(root: Path) -> dict[str, tuple[int, int, int]]:
    """Path -> (mode, size, mtime_ns) of the whole tree, to prove that a run changed nothing.

    Left out: temporary folders, Ansible's own remote temp files, apt's binary package caches and logs of
    simulated installs (apt writes them even for `apt-get -s`), and folder mtimes (entries are compared).
    """
    skip = {"tmp", "root/.ansible", "var/tmp", "proc", "mnt", "var/cache/apt", "var/log/apt"}
    out: dict[str, tuple[int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if os.path.normpath(os.path.join(rel, d)) not in skip]
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            is_dir = name in dirnames
            out[os.path.normpath(os.path.join(rel, name))] = (
                st.st_mode,
                0 if is_dir else st.st_size,
                0 if is_dir else st.st_mtime_ns,
            )
    return out


def diff_manifests(before: dict, after: dict) -> list[str]:
    changed = [p for p in before.keys() & after.keys() if before[p] != after[p]]
    return sorted(
        [f"+{p}" for p in after.keys() - before.keys()]
        + [f"-{p}" for p in before.keys() - after.keys()]
        + changed
    )


@contextlib.contextmanager
def bind_mount(source: Path, target: Path, *, kind: str = "bind") -> Iterator[Path]:
    """Mount (always unmounted afterwards, even when the test fails); the folders made for the mount point are
    removed again, so a rootfs that later tests share holds no empty stand-in (an empty dataset folder)."""
    made = [p for p in (target, *target.parents) if not p.exists()]
    target.mkdir(parents=True, exist_ok=True)
    if kind == "proc":
        subprocess.run(["mount", "-t", "proc", "proc", str(target)], check=True)
    else:
        subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", "--lazy", str(target)], check=False)
        for folder in made:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()


@pytest.fixture(scope="session")
def prerequisites() -> None:
    require(os.geteuid() == 0, "root (the chroot tests run chroot and mount)")
    for tool in ("debootstrap", "chroot", "equivs-build", "dpkg-scanpackages", "gpg"):
        require_tool(tool)
    require(PLAYBOOK_BIN.exists(), "ansible-playbook in .venv (make setup)")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("ansible-chroot")
    yield path
    # Rootfs trees are large (the CPU one holds TensorFlow); never leave them behind.
    subprocess.run(
        ["bash", "-c", f"grep -o ' {path}/[^ ]*' /proc/mounts | xargs -r -n1 umount --lazy"], check=False
    )
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


@pytest.fixture(scope="session")
def source_snapshot(workdir: Path) -> Path:
    dest = workdir / "source"
    dest.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCE_PATHS:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="session")
def rootfs_tarball(prerequisites: None) -> Path:
    proc = subprocess.run(
        [str(REPO / "scripts" / "bookworm-rootfs.sh"), str(REPO / ".cache" / "rootfs")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        pytest.fail(f"could not make the Debian 12 rootfs: {proc.stderr.strip()[-2000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def make_rootfs(workdir: Path, rootfs_tarball: Path):
    """Factory: a fresh Debian 12 tree with the workstation user, and an inventory for it."""

    def make(name: str) -> Rootfs:
        root = workdir / name / "root"
        root.mkdir(parents=True)
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-xf", str(rootfs_tarball)], check=True)
        fs = Rootfs(root, name, workdir / name / "hosts.ini")
        fs.inventory.write_text(
            f"[workstations]\n{name} ansible_host={root} ansible_connection=community.general.chroot"
            " ansible_python_interpreter=/usr/bin/python3\n"
        )
        fs.sh(f"useradd --create-home --shell /bin/bash {USER}")
        # The chroot connection passes the controller's environment on, TMPDIR (set by play()) included:
        # the same path must exist inside, or mktemp (dkms, ...) fails there.
        inner_tmp = root / str(root.parent).lstrip("/")
        inner_tmp.mkdir(parents=True)
        inner_tmp.chmod(0o1777)
        return fs

    return make


def uv_cache_dir() -> Path | None:
    """The host's uv cache (filled by `make setup`), shared into the chroot: no TensorFlow download."""
    path = Path(os.environ.get("UV_CACHE_DIR") or Path.home() / ".cache" / "uv")
    return path if path.is_dir() else None


# An asset of workloads/data/assets.toml that has no upstream hash (its sha256 is recorded at fetch), so a
# test bundle can hold a few bytes in its place; the role installs only what assets.toml lists.
ASSET = "cats_and_dogs_filtered"
ASSET_FILE = "datasets/cats_and_dogs_filtered.zip"


def asset_bundle(where: Path, name: str = ASSET, rel: str = ASSET_FILE, tag: str = "bundle") -> Path:
    """A tiny offline asset bundle as `python -m workloads assets pack` writes it: manifest.json + files."""
    content = where / tag
    (content / rel).parent.mkdir(parents=True)
    (content / rel).write_text("offline asset\n")
    data = (content / rel).read_bytes()
    subdir, file = rel.split("/", 1)
    entry = {"file": file, "subdir": subdir, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
             "md5": hashlib.md5(data).hexdigest()}  # fmt: skip
    (content / "manifest.json").write_text(json.dumps({"format": 1, "assets": {name: entry}}))
    bundle = where / f"{tag}.tar"
    subprocess.run(["tar", "-C", str(content), "-cf", str(bundle), "manifest.json", rel], check=True)
    return bundle


@dataclass
class Converged:
    fs: Rootfs
    first: PlayResult
    again: PlayResult

    def __repr__(self) -> str:  # the runs' output is shown by the assertions that look at it
        return f"Converged({self.fs.name}: first rc={self.first.rc}, again rc={self.again.rc})"


@pytest.fixture(scope="session")
def cpu_converged(make_rootfs, source_snapshot: Path) -> Iterator[Converged]:
    """The CPU path: every role, no GPU. Converged once, then re-run for idempotence."""
    fs = make_rootfs("ws-cpu")
    extra: dict[str, object] = {
        "workstation_source_dir": str(source_snapshot),
        # Docker's own repository is not reachable from CI: the CPU path uses Debian's docker.io.
        "docker_install_source": "distribution",
        "jupyter_port": 18888,
        "assets_bundle": str(asset_bundle(fs.root.parent)),
    }
    with contextlib.ExitStack() as stack:
        if cache := uv_cache_dir():
            stack.enter_context(bind_mount(cache, fs.root / "mnt" / "uv-cache"))
            extra["python_env_uv_cache_dir"] = "/mnt/uv-cache"
        first = fs.play(extra=extra, timing="cpu_first_converge_s")
        again = fs.play(extra=extra, timing="cpu_rerun_s") if first.rc == 0 else first
    yield Converged(fs, first, again)


def converged_host(converged: Converged) -> testinfra.host.Host:
    """testinfra's view of a converged rootfs; a failed first converge fails every test that looks at it."""
    assert converged.first.rc == 0, f"first converge failed: {converged.first!r}"
    return testinfra.get_host(str(converged.fs.root), connection="chroot")


GPU_BRANCH = "580"
# A Ubuntu 24.04 kernel release: the dummies are built for it and the role is told to provision it.
UBUNTU_KERNEL = "6.8.0-59-generic"
# The Ubuntu paths run on the Debian rootfs with Ubuntu's facts given as extra variables.
UBUNTU_FACTS = {
    "ansible_distribution": "Ubuntu",
    "ansible_distribution_version": "24.04",
    "ansible_distribution_major_version": "24",
    "ansible_distribution_release": "noble",
}
TOOLKIT_PIN = "1.17.8-1"


@dataclass
class GpuPath(Converged):
    extra: dict[str, object] = field(default_factory=dict)
    skip: tuple[str, ...] = ()


@pytest.fixture(scope="session")
def gpu_converged(make_rootfs, workdir: Path, source_snapshot: Path) -> Iterator[GpuPath]:
    """The Ubuntu GPU path with dummy packages that mirror Ubuntu's, NVIDIA's and Docker's relations, from
    signed local repositories reached through the same deb822 + fingerprint code path as the real ones.

    Default choices: branch 580, open modules, Canonical's precompiled modules (they exist for the kernel),
    Docker CE replacing a real conflicting package (runc), the toolkit pinned as a whole set.
    python_env and jupyter are skipped: the CPU path proves them, and the `gpu` extra's CUDA wheels
    (several GB) cannot be exercised without a GPU anyway.
    """
    fs = make_rootfs("ws-gpu")
    proc = subprocess.run(
        [str(REPO / "scripts" / "dummy-nvidia-repo.sh"), str(workdir / "dummy"), UBUNTU_KERNEL, "noble"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        pytest.fail(f"could not build the dummy repositories: {proc.stderr[-2000:]}")
    # One copy per repository: each gets its own deb822 source and keyring, as the real ones.
    for name in ("dummy-driver", "dummy-toolkit"):
        shutil.copytree(workdir / "dummy" / "repo", fs.root / "srv" / name)
    shutil.copytree(workdir / "dummy" / "docker-repo", fs.root / "srv" / "dummy-docker")
    fingerprint = (workdir / "dummy" / "repo" / "key.fpr").read_text().strip()
    # A real package that conflicts with Docker CE's containerd.io, as on a machine set up with docker.io.
    fs.sh("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc")
    extra = {
        **UBUNTU_FACTS,
        "workstation_source_dir": str(source_snapshot),
        "preflight_force_gpu": True,
        "nvidia_driver_kernel": UBUNTU_KERNEL,
        "nvidia_driver_apt_repository_uris": "file:/srv/dummy-driver",
        "nvidia_driver_apt_key_url": "file:///srv/dummy-driver/key.asc",
        "nvidia_driver_apt_key_fingerprint": fingerprint,
        "nvidia_container_toolkit_apt_repository_url": "file:/srv/dummy-toolkit",
        "nvidia_container_toolkit_apt_key_url": "file:///srv/dummy-toolkit/key.asc",
        "nvidia_container_toolkit_apt_key_fingerprint": fingerprint,
        "nvidia_container_toolkit_version": TOOLKIT_PIN,
        "docker_apt_repository_url": "file:/srv/dummy-docker",
        "docker_apt_key_url": "file:///srv/dummy-docker/key.asc",
        "docker_apt_key_fingerprint": fingerprint,
    }
    skip = ("--skip-tags", "python_env,jupyter")
    first = fs.play(*skip, extra=extra, timing="gpu_first_converge_s")
    again = fs.play(*skip, extra=extra, timing="gpu_rerun_s") if first.rc == 0 else first
    yield GpuPath(fs, first, again, extra, skip)


@pytest.fixture(scope="module")
def fresh_rootfs(make_rootfs) -> Rootfs:
    """Never provisioned: for --check and for the refusals (each test proves it changed nothing)."""
    return make_rootfs("ws-fresh")


def pytest_terminal_summary(terminalreporter) -> None:
    if not TIMINGS:
        return
    TIMINGS_FILE.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(TIMINGS_FILE.read_text()) if TIMINGS_FILE.exists() else {}
    TIMINGS_FILE.write_text(json.dumps({**previous, **TIMINGS}, indent=2) + "\n")
    figures = ", ".join(f"{k}={v}" for k, v in TIMINGS.items())
    terminalreporter.write_line(f"ansible chroot timings (s): {figures} -> {TIMINGS_FILE.relative_to(REPO)}")
