"""GPU path with dummy driver and toolkit packages (equivs) from a signed local apt repository and
preflight_force_gpu: the driver is installed and held, the toolkit configured once, a reboot requested."""

from __future__ import annotations

import json

import pytest
import testinfra

from .conftest import GPU_BRANCH, USER, Converged, converged_host

pytestmark = [pytest.mark.ansible, pytest.mark.slow]
DRIVER_PACKAGES = [f"nvidia-driver-{GPU_BRANCH}", f"nvidia-dkms-{GPU_BRANCH}"]


@pytest.fixture(scope="module")
def host(gpu_converged: Converged) -> testinfra.host.Host:
    return converged_host(gpu_converged)


def test_gpu_converge_and_rerun_changes_nothing(gpu_converged: Converged) -> None:
    assert gpu_converged.first.rc == 0, gpu_converged.first
    assert gpu_converged.first.recap["changed"] > 0
    assert gpu_converged.again.rc == 0, gpu_converged.again
    assert gpu_converged.again.recap["changed"] == 0, gpu_converged.again
    assert gpu_converged.again.seconds < 60


def test_driver_installed_and_held(host) -> None:
    for name in DRIVER_PACKAGES:
        assert host.package(name).is_installed
        assert host.check_output(f"dpkg-query -W -f='${{Status}}' {name}").startswith("hold ")
    assert host.package(f"linux-headers-{host.check_output('uname -r')}").is_installed


def test_reboot_is_requested_not_performed(gpu_converged: Converged, host) -> None:
    assert host.file("/var/run/reboot-required").exists
    assert (
        "Reboot needed: YES" in gpu_converged.first.flat and "Reboot needed: YES" in gpu_converged.again.flat
    )


def test_repositories_use_signed_by_keyrings(host) -> None:
    for name, keyring in (
        ("nvidia-driver", "nvidia-driver.asc"),
        ("nvidia-container-toolkit", "nvidia-container-toolkit.asc"),
    ):
        line = host.file(f"/etc/apt/sources.list.d/{name}.list").content_string
        assert f"signed-by=/etc/apt/keyrings/{keyring}" in line
        assert "BEGIN PGP PUBLIC KEY BLOCK" in host.file(f"/etc/apt/keyrings/{keyring}").content_string
        assert "trusted=yes" not in line
    assert not host.file("/etc/apt/trusted.gpg").exists  # no apt-key


def test_toolkit_registered_with_docker_once(gpu_converged: Converged, host) -> None:
    assert host.package("nvidia-container-toolkit").is_installed
    daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert "nvidia" in daemon["runtimes"]
    assert "Register the NVIDIA runtime with Docker" in gpu_converged.first.flat
    assert "docker" in host.user(USER).groups
