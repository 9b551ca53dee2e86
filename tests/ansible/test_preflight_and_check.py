"""On a never-provisioned Debian 12: --check changes nothing, and preflight refuses unsupported machines
and impossible settings with a clear message, before anything changes."""

from __future__ import annotations

import pytest

from .conftest import Rootfs, diff_manifests, manifest

pytestmark = pytest.mark.ansible


def assert_unchanged(fs: Rootfs, before: dict) -> None:
    changes = diff_manifests(before, manifest(fs.root))
    assert not changes, f"the run changed the rootfs: {changes[:20]}"


def test_check_mode_on_a_fresh_rootfs_changes_nothing(fresh_rootfs: Rootfs) -> None:
    before = manifest(fresh_rootfs.root)
    result = fresh_rootfs.play("--check", "--diff", timing="fresh_check_mode_s")
    assert result.rc == 0, result
    assert result.recap["changed"] > 0, "check mode should report what it would change"
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
        ({"workstation_user": "root"}, "must be an existing, non-root account"),
        ({"workstation_user": "nobody-here"}, "must be an existing, non-root account"),
    ],
    ids=["fake-facts-ubuntu-20.04", "driver-too-old", "root-user", "missing-user"],
)
def test_preflight_refuses_before_changing_anything(fresh_rootfs: Rootfs, extra: dict, message: str) -> None:
    before = manifest(fresh_rootfs.root)
    result = fresh_rootfs.play(extra=extra)
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
