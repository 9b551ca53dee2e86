"""A private mount namespace for one command (`unshare --mount`, root only): a staged PCI tree bind-mounted
over /sys/bus/pci/devices, so the command sees an NVIDIA GPU on the bus; and a private /dev, so that Debian's
real libcuda, which as root creates /dev/nvidiactl when it starts, changes nothing outside. CI runs as
root."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import require

H100 = ("0000:01:00.0", "0x10de", "0x030200", "0x2330")  # an H100 PCIe: address, vendor, class, device
H100_AUDIO = ("0000:01:00.1", "0x10de", "0x040300", "0x22a3")  # its audio function: not a GPU
# A /dev with only what the processes need, inside the namespace.
PRIVATE_DEV = """mount -t tmpfs -o mode=755 kw-private-dev /dev
mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/random c 1 8; mknod -m 666 /dev/urandom c 1 9
mkdir /dev/shm && mount -t tmpfs kw-private-shm /dev/shm && ln -s /proc/self/fd /dev/fd"""


def require_namespaces() -> None:
    require(os.geteuid() == 0, "root, for a private mount namespace (CI runs as root)")
    require(shutil.which("unshare") is not None, "unshare (util-linux)")


def staged_pci(root: Path, *functions: tuple[str, str, str, str]) -> Path:
    """A sysfs-like folder of PCI functions (vendor, class, device files; no driver bound)."""
    for address, vendor, cls, device in functions:
        (root / address).mkdir(parents=True)
        for name, value in (("vendor", vendor), ("class", cls), ("device", device)):
            (root / address / name).write_text(value + "\n")
    return root


def run(
    cmd: list[str], *, pci: Path | None = None, private_dev: bool = False, **kwargs
) -> subprocess.CompletedProcess[str]:
    """``cmd`` in a private mount namespace with ``pci`` over /sys/bus/pci/devices and/or a private /dev."""
    require_namespaces()
    script = ["set -e"]
    if pci is not None:
        script.append(f'mount --bind "{pci}" /sys/bus/pci/devices')
    if private_dev:
        script.append(PRIVATE_DEV)
    script.append('exec "$@"')
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "bash", "-c", "\n".join(script), "bash", *cmd],
        capture_output=True, text=True, check=False, **kwargs,
    )  # fmt: skip
