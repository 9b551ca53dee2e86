"""The three lowest layers, read from the file system only: the GPU on the PCI bus (or WSL2's /dev/dxg), the
kernel module, and the device nodes."""

from __future__ import annotations

import os
import re
from typing import Any

from gpu_doctor import rules
from gpu_doctor.context import Context
from gpu_doctor.cuda import RECOMMENDED_BRANCH
from gpu_doctor.model import NA, OK, Layer
from gpu_doctor.system import Boundary

# The efivars variable of the Secure Boot state: 4 bytes of attributes, then 1 = enabled.
SECURE_BOOT_VAR = "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
# The main module file: nvidia.ko (NVIDIA's installer, Ubuntu) or nvidia-current.ko (Debian), or compressed.
MODULE_FILE = re.compile(r"^nvidia(-current)?\.ko(\.(xz|zst|gz))?$")
INSTALL_DRIVER = "make provision (or: sudo ubuntu-drivers install), then reboot"


def pci_gpus(b: Boundary) -> list[dict[str, Any]] | None:
    """NVIDIA display controllers on the PCI bus, with the kernel driver bound to each; None: no sysfs."""
    base = b.path("sys/bus/pci/devices")
    try:
        devices = sorted(base.iterdir())
    except OSError:
        return None
    found = []
    for dev in devices:
        if not rules.is_nvidia_gpu(b.read(dev / "vendor"), b.read(dev / "class")):  # the Makefile's rule too
            continue
        try:
            driver = os.path.basename(os.readlink(dev / "driver"))
        except OSError:
            driver = None
        device_id = (b.read(dev / "device") or "?").removeprefix("0x")
        found.append(
            {
                "address": dev.name,
                "pci_id": f"10de:{device_id}",
                "driver": driver,
                "link": {
                    k: b.read(dev / k)
                    for k in ("current_link_speed", "max_link_speed", "current_link_width", "max_link_width")
                },
            }
        )
    return found


def kernel_release(b: Boundary) -> str:
    return b.read("proc/sys/kernel/osrelease") or os.uname().release


def hardware(ctx: Context) -> Layer:
    b, layer = ctx.boundary, Layer("hardware")
    ctx.container = b.exists(".dockerenv") or b.exists("run/.containerenv")
    ctx.wsl = b.exists("dev/dxg") or "microsoft" in kernel_release(b).lower()
    gpus = pci_gpus(b)
    ctx.pci_gpus = gpus or []
    nodes = sorted(p.name for p in b.path("dev").glob("nvidia[0-9]*"))
    layer.facts = {
        "pci_gpus": ctx.pci_gpus,
        "wsl": ctx.wsl,
        "container": ctx.container,
        "device_nodes": nodes,
    }
    if ctx.pci_gpus:
        layer.status = OK
        layer.summary = f"{len(ctx.pci_gpus)} NVIDIA GPU(s) on the PCI bus: " + ", ".join(
            f"{g['address']} ({g['pci_id']})" for g in ctx.pci_gpus
        )
        if ctx.container:
            layer.summary += " (seen from a container)"
        return layer
    if b.exists("dev/dxg"):
        layer.status, layer.summary = OK, "WSL2: the GPU is served by the Windows driver through /dev/dxg"
        return layer
    if nodes:
        layer.status, layer.summary = (
            OK,
            f"no PCI view of the GPU, but device nodes exist: /dev/{', /dev/'.join(nodes)}",
        )
        return layer
    pci = (
        "the PCI bus is not visible (no /sys/bus/pci/devices)"
        if gpus is None
        else "no PCI device of vendor 0x10de (NVIDIA) with a display class in /sys/bus/pci/devices"
    )
    layer.status = NA
    layer.summary = f"no NVIDIA GPU found: {pci}; no /dev/dxg (WSL2); no /dev/nvidia*"
    if ctx.container:
        layer.summary += " (this is a container: start it with --gpus all if the host has a GPU)"
    return layer


def _module_version(b: Boundary) -> tuple[str | None, str | None]:
    text = b.read("proc/driver/nvidia/version") or ""
    found = re.search(r"Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)", text)
    flavour = "open" if "Open Kernel Module" in text else "proprietary" if found else None
    return (found.group(1) if found else None), flavour


def _installed_modules(b: Boundary) -> dict[str, list[str]]:
    """Kernel release -> NVIDIA module files under /lib/modules."""
    found: dict[str, list[str]] = {}
    try:
        releases = sorted(p for p in b.path("lib/modules").iterdir() if p.is_dir())
    except OSError:
        return found
    for release in releases:
        files = [
            str(p.relative_to(release)) for p in release.rglob("nvidia*.ko*") if MODULE_FILE.match(p.name)
        ]
        if files:
            found[release.name] = files
    return found


def _secure_boot(b: Boundary) -> bool | None:
    data = b.read_bytes(SECURE_BOOT_VAR)
    if data is None:
        return None
    return len(data) >= 5 and data[4] == 1


def kernel_module(ctx: Context) -> Layer:
    b, layer = ctx.boundary, Layer("kernel_module")
    if ctx.wsl and not ctx.pci_gpus:
        layer.summary = "WSL2: the Windows driver serves the GPU, there is no Linux kernel module"
        return layer
    version, flavour = _module_version(b)
    ctx.kernel_module_version, ctx.kernel_module_flavour = version, flavour
    loaded = version is not None or b.exists("sys/module/nvidia")
    release = kernel_release(b)
    layer.facts = {
        "loaded": loaded,
        "version": version,
        "flavour": flavour,
        "kernel": release,
        "secure_boot": _secure_boot(b),
    }
    host = "on the host: " if ctx.container else ""
    nouveau = [g["address"] for g in ctx.pci_gpus if g["driver"] == "nouveau"]
    if nouveau:
        return layer.broken(
            f"the open-source nouveau driver owns GPU {', '.join(nouveau)}, so the NVIDIA driver cannot "
            "take it",
            f"{host}blacklist nouveau (printf 'blacklist nouveau\\noptions nouveau modeset=0\\n' | sudo "
            "tee /etc/modprobe.d/blacklist-nouveau.conf && sudo update-initramfs -u), then reboot",
            summary="nouveau is bound to the GPU",
        )
    if not loaded:
        return _why_not_loaded(ctx, layer, release, host)
    passthrough = [g["address"] for g in ctx.pci_gpus if g["driver"] == "vfio-pci"]
    unbound = [g for g in ctx.pci_gpus if g["driver"] not in ("nvidia", "vfio-pci")]
    if passthrough:
        return layer.broken(
            f"GPU {', '.join(passthrough)} is bound to vfio-pci: it is reserved for a virtual machine",
            "use it inside that VM, or remove it from the vfio-pci device list and reboot",
        )
    if unbound and (dropped := _driver_cannot_take(unbound, version, flavour, host)):
        return layer.broken(*dropped, summary=f"nvidia {version} loaded, GPU not bound")
    if unbound:
        ids = ", ".join(f"{g['address']} ({g['pci_id']})" for g in unbound)
        return layer.broken(
            f"the NVIDIA module {version} ({flavour}) is loaded but did not take GPU {ids}: this driver "
            "does not support it (too old for this GPU, or the GPU needs the open kernel modules: "
            "Blackwell / RTX 50xx)",
            f"{host}sudo dmesg | grep NVRM; install a newer driver, the -open flavour for Blackwell (sudo "
            f"apt install nvidia-driver-{RECOMMENDED_BRANCH}-open), then reboot",
            summary=f"nvidia {version} loaded, GPU not bound",
        )
    layer.status = OK
    layer.summary = f"nvidia {version or '?'} ({flavour or '?'}) loaded"
    if ctx.pci_gpus:
        layer.summary += f", bound to {len(ctx.pci_gpus)} GPU(s)"
    return layer


def _pre_turing(gpu: dict[str, Any]) -> bool:
    """A GPU older than Turing (no GSP), by its PCI device id (rules.toml [pci])."""
    try:
        return int(gpu["pci_id"].split(":")[1], 16) < int(rules.rules()["pci"]["first_turing_device_id"])
    except (ValueError, IndexError):
        return False


def _driver_cannot_take(
    unbound: list[dict[str, Any]], version: str | None, flavour: str | None, host: str
) -> tuple[str, str] | None:
    """(cause, remedy) when the loaded driver cannot drive these GPUs for a known reason: a pre-Turing GPU
    under the open kernel modules, or under a driver branch that dropped it."""
    old = [g for g in unbound if _pre_turing(g)]
    if not old:
        return None
    ids = ", ".join(f"{g['address']} ({g['pci_id']})" for g in old)
    legacy = int(rules.rules()["pci"]["last_branch_for_pre_turing"])
    branch = (rules.version_tuple(version) or (0,))[0]
    if branch > legacy:
        # Sources: NixOS/nixos-hardware#1880, NixOS/nixos-hardware#1828 ("will ignore this GPU").
        return (
            f"GPU {ids} is older than Turing (Maxwell, Pascal or Volta), and driver {version} no longer "
            f"supports it: branch {legacy} is the last that does (the kernel log says 'supported through the "
            f"NVIDIA {legacy}.xx Legacy drivers ... will ignore this GPU')",
            f"{host}make provision PROVISION_ARGS='-e nvidia_driver_branch={legacy}' (or: sudo apt install "
            f"nvidia-driver-{legacy}), then reboot",
        )
    if flavour == "open":
        # Sources: negativo17/nvidia-driver#158, void-linux/void-packages#56685,
        # NVIDIA/open-gpu-kernel-modules#19.
        return (
            f"GPU {ids} is older than Turing and has no GSP, so the open kernel modules (loaded: {version} "
            "open) cannot drive it ('not supported by open nvidia.ko because it does not include the "
            "required GPU System Processor')",
            f"{host}install the proprietary flavour of the same branch (sudo apt install "
            f"nvidia-driver-{branch} instead of nvidia-driver-{branch}-open), then reboot",
        )
    return None


def _why_not_loaded(ctx: Context, layer: Layer, release: str, host: str) -> Layer:
    b = ctx.boundary
    summary = "no NVIDIA kernel module loaded (/proc/driver/nvidia/version missing)"
    if ctx.container:
        return layer.broken(
            "the host has no NVIDIA kernel module loaded",
            "on the host: install the driver (make provision) and reboot, then start the container with "
            "--gpus all",
            summary=summary,
        )
    modules = _installed_modules(b)
    layer.facts["installed_modules"] = modules
    if release in modules:
        if layer.facts["secure_boot"]:
            return layer.broken(
                "Secure Boot is on and refused the NVIDIA module, which is not signed with an enrolled key",
                "sudo mokutil --import /var/lib/dkms/mok.pub, reboot and enrol the key in the MOK manager "
                "(or turn Secure Boot off in the firmware)",
                summary=summary,
            )
        return layer.broken(
            f"the NVIDIA module is installed for kernel {release} but not loaded",
            "sudo modprobe nvidia (if it fails: sudo dmesg | grep -i nvrm), or reboot",
            summary=summary,
        )
    if modules:
        return layer.broken(
            f"the NVIDIA module was built for kernel {', '.join(modules)} but the running kernel is "
            f"{release} (DKMS did not build it for this kernel)",
            f"sudo apt install linux-headers-{release} && sudo dkms autoinstall -k {release}, then reboot",
            summary=summary,
        )
    return layer.broken(
        "no NVIDIA driver is installed: the GPU is on the PCI bus but no NVIDIA kernel module exists",
        INSTALL_DRIVER,
        summary=summary,
    )


def device_nodes(ctx: Context) -> Layer:
    b, layer = ctx.boundary, Layer("device_nodes")
    if ctx.wsl and not ctx.pci_gpus:
        layer.status, layer.summary = OK, "WSL2: /dev/dxg (no /dev/nvidia* nodes are used there)"
        return layer
    dev = b.path("dev")
    nodes = sorted(p.name for p in dev.glob("nvidia[0-9]*"))
    ctl, uvm = b.exists("dev/nvidiactl"), b.exists("dev/nvidia-uvm")
    layer.facts = {
        "nodes": nodes,
        "nvidiactl": ctl,
        "nvidia_uvm": uvm,
        "nvidia_uvm_module": b.exists("sys/module/nvidia_uvm"),
    }
    if not nodes or not ctl:
        missing = (
            "/dev/nvidiactl and /dev/nvidia0.."
            if not nodes and not ctl
            else "/dev/nvidiactl"
            if not ctl
            else "/dev/nvidia0.."
        )
        if ctx.container:
            return layer.broken(
                f"{missing} missing in this container: it was started without GPU access",
                "docker run --gpus all ... (NVIDIA Container Toolkit), or podman run --device "
                "nvidia.com/gpu=all ...",
                summary=f"{missing} missing",
            )
        return layer.broken(
            f"{missing} missing although the kernel module is loaded (the nodes are created on first use)",
            "sudo nvidia-modprobe -c 0 -u (or enable nvidia-persistenced), or reboot",
            summary=f"{missing} missing",
        )
    if not uvm:
        module = "loaded" if layer.facts["nvidia_uvm_module"] else "not loaded"
        where = "on the host: " if ctx.container else ""
        restart = ", then restart the container" if ctx.container else ""
        return layer.broken(
            f"/dev/nvidia-uvm is missing (the nvidia_uvm module is {module}): CUDA cannot start without it "
            "and reports 'no CUDA-capable device' or error 999",
            f"{where}sudo modprobe nvidia-uvm && sudo nvidia-modprobe -u -c=0{restart}",
            summary="/dev/nvidia-uvm missing",
        )
    denied = [n for n in ("nvidiactl", "nvidia-uvm", *nodes) if not os.access(dev / n, os.R_OK | os.W_OK)]
    if denied and not b.staged:
        return layer.broken(
            f"no permission to open /dev/{', /dev/'.join(denied)}",
            "sudo usermod -aG video,render $USER and log in again (ls -l /dev/nvidia*)",
        )
    layer.status = OK
    layer.summary = f"/dev/nvidiactl, /dev/nvidia-uvm, /dev/{', /dev/'.join(nodes)}"
    bound = sum(g["driver"] == "nvidia" for g in ctx.pci_gpus)
    if len(nodes) < bound and not ctx.container:
        layer.warn(
            f"{len(nodes)} device node(s) for {bound} GPUs bound to nvidia",
            "sudo nvidia-modprobe -c N for each GPU N",
        )
    return layer
