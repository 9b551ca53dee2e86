"""The real NVIDIA driver from Debian 12's non-free archive, built by DKMS in a fresh rootfs.

The driver role enables contrib/non-free in Debian's own sources, installs nvidia-driver and
nvidia-kernel-dkms (branch 535: proprietary modules by default), and DKMS compiles the module against a real
linux-headers package for the kernel the role is told (in a chroot `uname -r` is the host's kernel). Then:
modinfo of the built module, a re-run with changed=0, every package from the driver's sources held, a refused
change of driver, and the change itself (to the datacenter release, nvidia-tesla-535-*: unhold, replace,
purge, a second real DKMS build, hold again). Secure Boot with a stand-in mokutil: the MOK key is named until
it is enrolled.
Slow: about 250 MB of packages and two DKMS builds of a few minutes each on 2 cores.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import PlayResult, Rootfs, bind_mount

pytestmark = [pytest.mark.ansible, pytest.mark.slow]
# Only the driver role runs (and preflight): Docker, the toolkit and the Python env are proven elsewhere.
TAGS = ("--tags", "nvidia_driver")
SOURCES = re.compile(r"^(nvidia-graphics-drivers(-tesla-\d+)?|nvidia-open-gpu-kernel-modules)$")


@dataclass
class RealDriver:
    fs: Rootfs
    kernel: str
    extra: dict[str, object]
    first: PlayResult
    again: PlayResult


def driver_packages(fs: Rootfs) -> dict[str, str]:
    """Installed packages built from the driver's sources -> dpkg's Status ("hold ok installed", ...)."""
    out = fs.sh("dpkg-query -W -f='${Package}\\t${source:Package}\\t${Status}\\n'").stdout
    rows = [line.split("\t") for line in out.splitlines()]
    return {name: st for name, source, st in rows if SOURCES.match(source) and st.endswith("installed")}


def module_info(fs: Rootfs, kernel: str) -> dict[str, str]:
    """modinfo of the NVIDIA module DKMS installed for `kernel` (Debian: nvidia-current, nvidia-tesla-535)."""
    pattern = r".*/nvidia(-current|-tesla-[0-9]+)?(-open)?\.ko(\..*)?"
    found = fs.sh(f"find /lib/modules/{kernel}/updates -regextype egrep -regex '{pattern}'").stdout.split()
    assert len(found) == 1, f"expected one nvidia module under /lib/modules/{kernel}/updates: {found}"
    fields = {}
    for line in fs.sh(f"modinfo {found[0]}").stdout.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


@pytest.fixture(scope="module")
def real_driver(make_rootfs, source_snapshot: Path) -> Iterator[RealDriver]:
    fs = make_rootfs("ws-real-driver")
    with contextlib.ExitStack() as stack:
        # DKMS (and the packages' maintainer scripts) need these, as on a booted machine.
        stack.enter_context(bind_mount(Path("proc"), fs.root / "proc", kind="proc"))
        for path in ("/dev", "/dev/pts", "/sys"):
            stack.enter_context(bind_mount(Path(path), fs.root / path.lstrip("/")))
        # The kernel to build for: the ABI of Debian's linux-headers-amd64 (a real, installable package).
        fs.sh("apt-get update -qq")
        depends = fs.sh("apt-cache depends --important linux-headers-amd64").stdout
        kernel = re.search(r"linux-headers-(\d\S*-amd64)", depends).group(1)
        extra: dict[str, object] = {
            "workstation_source_dir": str(source_snapshot),
            "preflight_force_gpu": True,
            # Branch 535 runs the locked TensorFlow on GPUs with native code in it (gpu_doctor/rules.toml).
            "preflight_gpu_native_code": True,
            "nvidia_driver_kernel": kernel,
        }
        first = fs.play(*TAGS, extra=extra, timing="real_driver_first_converge_s")
        again = fs.play(*TAGS, extra=extra, timing="real_driver_rerun_s") if first.rc == 0 else first
        yield RealDriver(fs, kernel, extra, first, again)


def test_real_driver_converges_then_reruns_unchanged(real_driver: RealDriver) -> None:
    assert real_driver.first.rc == 0, real_driver.first
    assert real_driver.first.recap["changed"] > 0
    assert real_driver.again.rc == 0, real_driver.again
    assert real_driver.again.recap["changed"] == 0, real_driver.again


def test_non_free_is_enabled_in_debians_own_sources(real_driver: RealDriver) -> None:
    sources = (real_driver.fs.root / "etc/apt/sources.list.d/debian.sources").read_text()
    components = re.findall(r"^Components: (.*)$", sources, re.M)
    wanted = {"main", "contrib", "non-free", "non-free-firmware"}
    assert components and all(wanted <= set(c.split()) for c in components), components
    assert real_driver.fs.sh("apt-get update 2>&1").stdout.count("Conflicting") == 0


def test_dkms_built_the_module_for_the_given_kernel(real_driver: RealDriver) -> None:
    fs, kernel = real_driver.fs, real_driver.kernel
    driver = fs.sh("dpkg-query -W -f='${Version}' nvidia-driver").stdout
    info = module_info(fs, kernel)
    assert driver.startswith(info["version"] + "-"), (driver, info)
    assert info["license"] == "NVIDIA", info  # proprietary (branch 535; the open module says Dual MIT/GPL)
    assert info["vermagic"].split()[0] == kernel, info


def test_every_package_of_the_driver_is_held(real_driver: RealDriver) -> None:
    packages = driver_packages(real_driver.fs)
    for name in ("nvidia-driver", "nvidia-kernel-dkms", "libnvidia-ml1", "firmware-nvidia-gsp"):
        assert name in packages, sorted(packages)
    not_held = sorted(name for name, status in packages.items() if not status.startswith("hold "))
    assert not not_held, f"not held: {not_held}"


def test_reboot_is_decided_on_every_run(real_driver: RealDriver) -> None:
    version = module_info(real_driver.fs, real_driver.kernel)["version"]
    expected = f"Reboot needed: YES (driver {version} installed for {real_driver.kernel}, loaded: none)"
    assert expected in real_driver.first.flat, real_driver.first
    assert expected in real_driver.again.flat, real_driver.again


# mokutil as on a machine with Secure Boot on, its DKMS key enrolled or not (mokutil's own wording).
FAKE_MOKUTIL = """#!/bin/sh
case "$1" in
  --sb-state) echo "SecureBoot enabled" ;;
  --test-key) echo "$2 is {state}"; [ "{state}" = "already enrolled" ] && exit 1 || exit 0 ;;
esac
"""


@pytest.mark.parametrize("state", ["not enrolled", "already enrolled"])
def test_secure_boot_names_the_mok_key_until_it_is_enrolled(real_driver: RealDriver, state: str) -> None:
    """Secure Boot itself cannot be turned on here: mokutil is a stand-in, the DKMS-built module is real."""
    mokutil = real_driver.fs.root / "usr/local/bin/mokutil"
    mokutil.write_text(FAKE_MOKUTIL.format(state=state))
    mokutil.chmod(0o755)
    try:
        result = real_driver.fs.play(*TAGS, extra=real_driver.extra)
    finally:
        mokutil.unlink()
    assert result.rc == 0 and result.recap["changed"] == 0, result
    assert "WARNING: Secure Boot is enabled" in result.flat, result
    pending = "is signed with /var/lib/dkms/mok.pub, which is not enrolled: run `sudo mokutil --import"
    if state == "not enrolled":
        assert pending in result.flat and "enrol the MOK key at the console" in result.flat, result
    else:
        assert pending not in result.flat and "enrol the MOK key" not in result.flat, result


def test_open_modules_are_refused_while_debians_lag(real_driver: RealDriver) -> None:
    """Debian 12's open module (nvidia-open-kernel-dkms, contrib) lags nvidia-driver's security updates
    (535.261.03 against 535.309.01 when this was written): asking for it is refused, nothing changes."""
    fs = real_driver.fs
    show = "apt-cache show --no-all-versions {} | sed -n 's/^Version: //p'"
    packages = ("nvidia-driver", "nvidia-open-kernel-dkms")
    version = {name: fs.sh(show.format(name)).stdout.split("-")[0] for name in packages}
    result = fs.play(*TAGS, extra={**real_driver.extra, "nvidia_driver_modules": "open"})
    assert result.rc != 0 and result.recap["changed"] == 0, result
    if version["nvidia-driver"] != version["nvidia-open-kernel-dkms"]:
        assert "the kernel module does not match the driver" in result.flat, (version, result)
    else:  # Debian caught up: then it is a change of driver, refused without consent
        assert "would install nvidia-open-kernel-dkms instead" in result.flat, result


def test_changing_driver_is_refused_then_done_when_allowed(real_driver: RealDriver) -> None:
    fs = real_driver.fs
    tesla = {**real_driver.extra, "nvidia_driver_server": True}
    refused = fs.play(*TAGS, extra=tesla)
    assert refused.rc != 0 and refused.recap["changed"] == 0, refused
    expected = "would install nvidia-tesla-535-driver, nvidia-tesla-535-kernel-dkms instead"
    assert expected in refused.flat, refused
    assert "nvidia_driver_allow_change=true" in refused.flat

    allowed = {**tesla, "nvidia_driver_allow_change": True}
    changed = fs.play(*TAGS, extra=allowed, timing="real_driver_change_s")
    assert changed.rc == 0, changed
    again = fs.play(*TAGS, extra=allowed)
    assert again.rc == 0 and again.recap["changed"] == 0, again

    packages = driver_packages(fs)
    assert {"nvidia-tesla-535-driver", "nvidia-tesla-535-kernel-dkms"} <= packages.keys(), sorted(packages)
    assert not {"nvidia-driver", "nvidia-kernel-dkms"} & packages.keys(), sorted(packages)
    assert all(status.startswith("hold ") for status in packages.values()), packages
    tesla_version = fs.sh("dpkg-query -W -f='${Version}' nvidia-tesla-535-driver").stdout
    info = module_info(fs, real_driver.kernel)  # the datacenter release's module, built by DKMS
    assert tesla_version.startswith(info["version"] + "-"), (tesla_version, info)
    assert info["license"] == "NVIDIA", info
