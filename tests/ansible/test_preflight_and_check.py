"""On a never-provisioned Debian 12: --check changes nothing, and preflight (or the driver role's first
checks) refuses unsupported machines and impossible settings with a clear message, before anything
changes."""

from __future__ import annotations

import re
import shutil

import pytest

from gpu_doctor import rules

from .conftest import REPO, Rootfs, diff_manifests, manifest

pytestmark = pytest.mark.ansible
# What gpu_doctor/rules.toml (preflight's source) says of Debian 12's branch 535 and the locked TensorFlow.
RULE_535 = rules.preflight(REPO / "uv.lock", 535)
NATIVE_ARCHS = ", ".join(arch for arch in RULE_535["archs"] if arch.startswith("sm_"))
# Docker's own repository is not reachable from CI.
OFFLINE = {"docker_install_source": "distribution"}


def assert_unchanged(fs: Rootfs, before: dict) -> None:
    changes = diff_manifests(before, manifest(fs.root))
    assert not changes, f"the run changed the rootfs: {changes[:20]}"


def test_check_mode_on_a_fresh_rootfs_changes_nothing(fresh_rootfs: Rootfs) -> None:
    before = manifest(fresh_rootfs.root)
    result = fresh_rootfs.play("--check", "--diff", extra=OFFLINE, timing="fresh_check_mode_s")
    assert result.rc == 0, result
    assert result.recap["changed"] > 0, "check mode should report what it would change"
    assert_unchanged(fresh_rootfs, before)


def test_check_mode_with_a_gpu_says_what_it_cannot_show(fresh_rootfs: Rootfs) -> None:
    """Debian's non-free is not enabled in check mode, so apt cannot resolve the driver: said, not failed.
    (The toolkit is skipped: NVIDIA's repository is not reachable from CI.)"""
    before = manifest(fresh_rootfs.root)
    extra = {**OFFLINE, "preflight_force_gpu": True, "preflight_gpu_native_code": True}
    result = fresh_rootfs.play("--check", "--diff", "--skip-tags", "nvidia_container_toolkit", extra=extra)
    assert result.rc == 0, result
    assert "apt sources are not enabled yet (Debian contrib/non-free), so which driver" in result.flat
    assert "contrib non-free non-free-firmware" in result.output  # the --diff of debian.sources
    assert_unchanged(fresh_rootfs, before)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"ansible_distribution": "Ubuntu", "ansible_distribution_version": "20.04"},
            "Unsupported OS: Ubuntu 20.04. Supported: Ubuntu 22.04, 24.04; Debian 12.",
        ),
        (
            {"preflight_force_gpu": True, "nvidia_driver_branch": "470"},
            "nvidia_driver_branch=470 is too old for CUDA 12.5",
        ),
        (
            # Debian 12's only branch runs the locked CUDA by minor-version compatibility, not its PTX (H100).
            {"preflight_force_gpu": True},
            f"nvidia_driver_branch=535 is too old for CUDA {RULE_535['cuda_major_minor']}, which the "
            f"locked TensorFlow {RULE_535['tensorflow']} needs: GPUs that run its PTX (an H100 has no native "
            f"code in the build) need driver {RULE_535['min_driver']} or newer (gpu_doctor/rules.toml); set "
            f"nvidia_driver_branch to {RULE_535['min_branch']} or newer "
            f"(e.g. -e nvidia_driver_branch={RULE_535['recommended_branch']}). "
            f"If every GPU here has native code in the build ({NATIVE_ARCHS}: not Hopper or newer), branch "
            "535 runs it through minor-version compatibility: pass -e preflight_gpu_native_code=true "
            "(Debian 12 carries branch 535 only).",
        ),
        ({"workstation_user": "root"}, "must be an existing, non-root account"),
        ({"workstation_user": "nobody-here"}, "must be an existing, non-root account"),
        ({"python_env_python": "/usr/bin/python3.99"}, "python_env_python=/usr/bin/python3.99 does not run"),
        (
            # GTX 1080 (PCI 10de:1b80) predates Turing: no open kernel modules. (Pascal has native code in
            # the locked TensorFlow, so Debian 12's branch 535 passes the CUDA rule.)
            {
                "preflight_force_gpu": True,
                "preflight_gpu_native_code": True,
                "preflight_gpu_device_ids": [0x1B80],
                "nvidia_driver_modules": "open",
            },
            "The GPU 10de:1b80 (PCI device ID below 0x1E00) predates Turing",
        ),
        (
            # RTX 5090 (10de:2b85), Blackwell: open kernel modules only (and a branch that knows it).
            {
                "preflight_force_gpu": True,
                "nvidia_driver_branch": "580",
                "preflight_gpu_device_ids": [0x2B85],
                "nvidia_driver_modules": "proprietary",
            },
            "A Blackwell or newer GPU (PCI device ID 0x2900 or above) needs the open kernel modules",
        ),
    ],
    ids=[
        "fake-facts-ubuntu-20.04",
        "driver-too-old",
        "debian-535-for-ptx",
        "root-user",
        "missing-user",
        "no-interpreter",
        "open-on-pascal",
        "proprietary-on-blackwell",
    ],
)
def test_preflight_refuses_before_changing_anything(fresh_rootfs: Rootfs, extra: dict, message: str) -> None:
    before = manifest(fresh_rootfs.root)
    result = fresh_rootfs.play(extra={**OFFLINE, **extra})
    assert result.rc != 0 and result.recap["failed"] == 1, result
    assert result.recap["changed"] == 0
    assert message in result.flat, result
    assert "Nothing was changed" in result.flat
    assert_unchanged(fresh_rootfs, before)


def test_old_debian_release_is_refused(fresh_rootfs: Rootfs) -> None:
    os_release = fresh_rootfs.root / "etc" / "os-release"
    debian_version = fresh_rootfs.root / "etc" / "debian_version"
    saved = os_release.read_text(), debian_version.read_text()
    os_release.write_text(
        saved[0].replace('VERSION_ID="12"', 'VERSION_ID="11"').replace("bookworm", "bullseye")
    )
    debian_version.write_text("11.9\n")
    try:
        before = manifest(fresh_rootfs.root)
        result = fresh_rootfs.play()
        assert result.rc != 0 and result.recap["changed"] == 0, result
        assert "Unsupported OS: Debian 11" in result.flat, result
        assert_unchanged(fresh_rootfs, before)
    finally:
        os_release.write_text(saved[0])
        debian_version.write_text(saved[1])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"workstation_user": "toor"}, "workstation_user=toor has uid 0 (it is root under another name)"),
        ({"jupyter_user": "toor"}, "jupyter_user=toor has uid 0 (it is root under another name)"),
        ({"jupyter_user": "nobody-here"}, "jupyter_user=nobody-here does not exist"),
    ],
    ids=["workstation-user-uid-0", "jupyter-user-uid-0", "missing-jupyter-user"],
)
def test_preflight_refuses_uid_0_under_any_name(fresh_rootfs: Rootfs, extra: dict, message: str) -> None:
    """Root is uid 0, whatever the account is called: a second uid-0 account must not run JupyterLab."""
    fresh_rootfs.sh("useradd --non-unique --uid 0 --gid 0 --no-create-home toor")
    try:
        before = manifest(fresh_rootfs.root)
        result = fresh_rootfs.play(extra=extra)
        assert result.rc != 0 and result.recap["failed"] == 1, result
        assert result.recap["changed"] == 0
        assert message in result.flat and "Nothing was changed" in result.flat, result
        assert_unchanged(fresh_rootfs, before)
    finally:
        fresh_rootfs.sh("sed -i '/^toor:/d' /etc/passwd /etc/shadow")


@pytest.fixture
def fake_files(fresh_rootfs: Rootfs):
    """Create files in the rootfs for one test (before its manifest is taken), removed afterwards with the
    folders made for them (the rootfs is shared by the module's tests)."""
    made: list = []

    def make(path: str, content: str, mode: int = 0o644) -> None:
        target = fresh_rootfs.root / path.lstrip("/")
        missing = [folder for folder in target.parents if not folder.exists()]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        target.chmod(mode)
        made.append(missing[-1] if missing else target)

    yield make
    for target in reversed(made):
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


def test_ubuntu_22_04_python_3_10_is_refused_before_any_change(fresh_rootfs: Rootfs, fake_files) -> None:
    """Ubuntu 22.04's python3 is 3.10; the lock has TensorFlow wheels for 3.11-3.13 only."""
    fake_files("/usr/local/bin/python3.10", "#!/bin/sh\necho 3.10.12\n", 0o755)
    before = manifest(fresh_rootfs.root)
    facts = {"ansible_distribution": "Ubuntu", "ansible_distribution_version": "22.04"}
    result = fresh_rootfs.play(extra={**OFFLINE, **facts, "python_env_python": "/usr/local/bin/python3.10"})
    assert result.rc != 0 and result.recap["changed"] == 0, result
    assert (
        "Python 3.10.12 (/usr/local/bin/python3.10) does not satisfy requires-python >=3.11,<3.14"
        in result.flat
    )
    assert "Ubuntu 22.04's python3 is 3.10" in result.flat and "Nothing was changed" in result.flat
    assert_unchanged(fresh_rootfs, before)


def test_wsl2_gpu_gets_cuda_wheels_and_no_linux_driver(fresh_rootfs: Rootfs, fake_files) -> None:
    """WSL2 shows no PCI vendor 10de: its GPU is /dev/dxg, with the Windows driver's libcuda in
    /usr/lib/wsl/lib."""
    fake_files("/dev/dxg", "")
    fake_files("/usr/lib/wsl/lib/libcuda.so.1", "")
    before = manifest(fresh_rootfs.root)
    wsl = {"ansible_kernel": "5.15.167.4-microsoft-standard-WSL2"}
    result = fresh_rootfs.play("--tags", "nvidia_driver", extra={**OFFLINE, **wsl})
    assert result.rc == 0 and result.recap["changed"] == 0, result
    assert "GPU: yes: WSL2 (/dev/dxg, the Windows driver)" in result.flat, result
    assert "WSL2 uses the Windows driver; never install a Linux driver inside WSL" in result.flat
    gpu_set = ", ".join(rules.extras_for(gpu=True))
    assert f"Python environment: the locked packages with the extras {gpu_set} (the GPU set:" in result.flat
    assert_unchanged(fresh_rootfs, before)


def test_gpus_on_the_pci_bus_by_the_doctors_rule(fresh_rootfs: Rootfs, fake_files) -> None:
    """Preflight's sysfs loop applies gpu_doctor/rules.toml [hardware]: an NVSwitch (NVIDIA, bridge class) and
    another vendor's display are not GPUs; an RTX 4090 (10de:2684, display class) is."""
    hardware = rules.rules()["hardware"]
    pci = "/sys/bus/pci/devices"
    staged = {
        "0000:00:02.0": ("0x8086", "0x030000", "0x3e92"),  # Intel integrated graphics
        "0000:05:00.0": (hardware["nvidia_vendor"], "0x068000", "0x22a3"),  # NVSwitch
    }
    for bdf, (vendor, pci_class, device) in staged.items():
        for name, value in (("vendor", vendor), ("class", pci_class), ("device", device)):
            fake_files(f"{pci}/{bdf}/{name}", value + "\n")
    native = {**OFFLINE, "preflight_gpu_native_code": True}
    result = fresh_rootfs.play("--tags", "preflight-only", extra=native)
    assert result.rc == 0 and "GPU: no" in result.flat, result
    for name, value in (("vendor", hardware["nvidia_vendor"]), ("class", "0x030000"), ("device", "0x2684")):
        fake_files(f"{pci}/0000:01:00.0/{name}", value + "\n")
    before = manifest(fresh_rootfs.root)
    result = fresh_rootfs.play("--tags", "preflight-only", extra=native)
    assert result.rc == 0 and result.recap["changed"] == 0, result
    assert re.search(r"GPU: yes: 10de:2684\b(?!,)", result.flat) and "22a3" not in result.flat, result
    assert_unchanged(fresh_rootfs, before)
