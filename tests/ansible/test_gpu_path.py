"""The Ubuntu GPU path with dummy packages that mirror the real relations (scripts/dummy-nvidia-repo.sh).

Branch 580 with open modules from Canonical's precompiled packages by default, the 570 transitional
packages refused, a change to proprietary modules (DKMS) refused and then done on request, Docker CE
replacing a conflicting package, the toolkit pinned as a whole set, every repository a deb822 source with a
checked key.
"""

from __future__ import annotations

import json

import pytest
import testinfra

from .conftest import TOOLKIT_PIN, UBUNTU_KERNEL, USER, GpuPath, converged_host

pytestmark = [pytest.mark.ansible, pytest.mark.slow]
PRECOMPILED = [
    "nvidia-headless-no-dkms-580-open",
    "nvidia-utils-580",
    f"linux-modules-nvidia-580-open-{UBUNTU_KERNEL}",
    "linux-modules-nvidia-580-open-generic",
]
# Resolved from them, not named by the role: must be held too.
RESOLVED = ["libnvidia-compute-580", "nvidia-kernel-common-580", "nvidia-kernel-source-580-open"]


@pytest.fixture(scope="module")
def host(gpu_converged: GpuPath) -> testinfra.host.Host:
    return converged_host(gpu_converged)


def status(host, name: str) -> str:
    return host.check_output(f"dpkg-query -W -f='${{Status}}' {name} 2>/dev/null || true")


def test_gpu_converge_and_rerun_changes_nothing(gpu_converged: GpuPath) -> None:
    assert gpu_converged.first.rc == 0, gpu_converged.first
    assert gpu_converged.first.recap["changed"] > 0
    assert gpu_converged.again.rc == 0, gpu_converged.again
    assert gpu_converged.again.recap["changed"] == 0, gpu_converged.again
    # Its time goes to timings.json; the CPU path checks the re-run's speed (this one fetches three keys).


def test_open_precompiled_driver_installed_and_everything_resolved_held(host) -> None:
    for name in PRECOMPILED + RESOLVED:
        assert status(host, name) == "hold ok installed", name
    # Precompiled: no DKMS package, no headers, and the module is Canonical's (open: Dual MIT/GPL).
    assert not host.package("nvidia-dkms-580-open").is_installed
    assert not host.package(f"linux-headers-{UBUNTU_KERNEL}").is_installed
    module = f"/lib/modules/{UBUNTU_KERNEL}/kernel/nvidia-580/nvidia.ko"
    assert host.check_output(f"modinfo -F license {module}") == "Dual MIT/GPL"


def test_reboot_is_requested_on_every_run_not_performed(gpu_converged: GpuPath, host) -> None:
    assert host.file("/var/run/reboot-required").exists
    expected = f"Reboot needed: YES (driver 580.95.05 installed for {UBUNTU_KERNEL}, loaded: none)"
    assert expected in gpu_converged.first.flat and expected in gpu_converged.again.flat


def test_repositories_are_deb822_sources_with_checked_keys(host) -> None:
    for name in ("nvidia-driver", "nvidia-container-toolkit", "docker"):
        source = host.file(f"/etc/apt/sources.list.d/{name}.sources").content_string
        assert f"Signed-By: /etc/apt/keyrings/{name}.asc" in source, source
        assert "BEGIN PGP PUBLIC KEY BLOCK" in host.file(f"/etc/apt/keyrings/{name}.asc").content_string
        assert "trusted" not in source
    assert not host.file("/etc/apt/trusted.gpg").exists  # no apt-key


def test_docker_ce_replaced_the_conflicting_packages(host) -> None:
    assert host.package("docker-ce").is_installed and host.package("containerd.io").is_installed
    assert not host.package("runc").is_installed  # real Debian package, removed first as Docker's guide says
    assert "docker" in host.user(USER).groups


def test_toolkit_pinned_as_a_whole_set_and_registered_once(gpu_converged: GpuPath, host) -> None:
    for name in ("nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools"):
        assert host.package(name).version == TOOLKIT_PIN, name
    # The repository also has 1.18.0-1: without the pin of the whole set apt would take the newer library.
    assert host.package("libnvidia-container1").version == TOOLKIT_PIN
    daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert "nvidia" in daemon["runtimes"]
    assert "Register the NVIDIA runtime with Docker" in gpu_converged.first.flat


def test_a_list_file_from_nvidias_guide_is_replaced(gpu_converged: GpuPath, host) -> None:
    """NVIDIA's guide writes nvidia-container-toolkit.list with another keyring: apt would refuse both."""
    fs = gpu_converged.fs
    guide = fs.root / "etc/apt/sources.list.d/nvidia-container-toolkit.list"
    keyring = fs.root / "usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
    guide.write_text(
        "deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] file:/srv/dummy-toolkit /\n"
    )
    keyring.write_bytes(b"stale")
    assert "Conflicting values set for option Signed-By" in fs.sh("apt-get update 2>&1", check=False).stdout
    result = fs.play(*gpu_converged.skip, extra=gpu_converged.extra)
    assert result.rc == 0, result
    assert not guide.exists() and not keyring.exists()
    assert "Conflicting" not in fs.sh("apt-get update 2>&1").stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"nvidia_driver_branch": "570"},
            "nvidia-driver-570-open is a transitional package (it depends on nvidia-driver-580-open)",
        ),
        (
            {"nvidia_driver_modules": "proprietary"},
            "would install nvidia-driver-580, nvidia-dkms-580 instead",
        ),
    ],
    ids=["570-transitional", "change-without-consent"],
)
def test_refused_without_changing_the_driver(gpu_converged: GpuPath, host, extra: dict, message: str) -> None:
    before = host.check_output("dpkg-query -W -f='${Package} ${Version} ${Status}\\n'")
    result = gpu_converged.fs.play(*gpu_converged.skip, extra={**gpu_converged.extra, **extra})
    assert result.rc != 0 and result.recap["changed"] == 0, result
    assert message in result.flat, result
    assert host.check_output("dpkg-query -W -f='${Package} ${Version} ${Status}\\n'") == before


def test_change_to_proprietary_dkms_when_allowed(gpu_converged: GpuPath, host) -> None:
    """Last: it changes the rootfs. Unhold, replace (apt may change held packages), purge, hold again."""
    extra = {
        **gpu_converged.extra,
        "nvidia_driver_modules": "proprietary",
        "nvidia_driver_allow_change": True,
    }
    changed = gpu_converged.fs.play(*gpu_converged.skip, extra=extra, timing="gpu_change_driver_s")
    assert changed.rc == 0, changed
    again = gpu_converged.fs.play(*gpu_converged.skip, extra=extra)
    assert again.rc == 0 and again.recap["changed"] == 0, again
    for name in ("nvidia-driver-580", "nvidia-dkms-580", "nvidia-kernel-source-580", "libnvidia-compute-580"):
        assert status(host, name) == "hold ok installed", name
    for name in (*PRECOMPILED[:1], *PRECOMPILED[2:], "nvidia-kernel-source-580-open"):
        assert not host.package(name).is_installed, name
    assert status(host, f"linux-headers-{UBUNTU_KERNEL}") == "install ok installed"
    module = f"/lib/modules/{UBUNTU_KERNEL}/updates/dkms/nvidia.ko"
    assert host.check_output(f"modinfo -F license {module}") == "NVIDIA"


def test_upgrade_from_held_570_transitional_packages(gpu_converged: GpuPath, host) -> None:
    """After the change above: a machine as an earlier version of this playbook left it on Ubuntu, with the
    empty nvidia-driver-570/nvidia-dkms-570 (LP: #2147038) held over the real 580 packages. The default run
    refuses to touch them, then replaces all of them with 580 open precompiled on request."""
    fs = gpu_converged.fs
    fs.sh(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nvidia-driver-570 nvidia-dkms-570"
        " && apt-mark hold nvidia-driver-570 nvidia-dkms-570"
    )
    refused = fs.play(*gpu_converged.skip, extra=gpu_converged.extra)
    assert refused.rc != 0 and refused.recap["changed"] == 0, refused
    assert "would install nvidia-headless-no-dkms-580-open," in refused.flat, refused

    allowed = {**gpu_converged.extra, "nvidia_driver_allow_change": True}
    upgraded = fs.play(*gpu_converged.skip, extra=allowed, timing="gpu_upgrade_from_570_s")
    assert upgraded.rc == 0, upgraded
    for name in ("nvidia-driver-570", "nvidia-dkms-570", "nvidia-driver-580", "nvidia-dkms-580"):
        assert not host.package(name).is_installed, name
    for name in PRECOMPILED + RESOLVED:
        assert status(host, name) == "hold ok installed", name
