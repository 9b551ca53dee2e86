"""The container layer, on the host: can Docker and Podman give containers the GPU? Docker's ``--gpus`` needs
the NVIDIA Container Toolkit's hook; a CDI spec (Podman's ``--device nvidia.com/gpu=all``, Docker's CDI mode)
names the driver's files by version and goes stale when the driver is upgraded. The host's own stack does not
need either, so faults here are warnings: the image (``make jupyter``) is what they break."""

from __future__ import annotations

import re

from gpu_doctor import rules
from gpu_doctor.context import Context
from gpu_doctor.model import OK, Layer

# Driver files named by version in a CDI spec: libcuda.so.570.133.20, libnvidia-ml.so.570.133.20
_VERSIONED = re.compile(r"lib(?:cuda|nvidia-ml)\.so\.(\d+\.\d+(?:\.\d+)?)")


def _cdi_specs(ctx: Context) -> dict[str, set[str]]:
    """CDI spec files -> the driver versions their library paths name."""
    found: dict[str, set[str]] = {}
    for folder in rules.rules()["containers"]["cdi_dirs"]:
        try:
            files = sorted(ctx.boundary.path(folder).iterdir())
        except OSError:
            continue
        for f in files:
            if f.suffix not in (".yaml", ".yml", ".json"):
                continue
            text = ctx.boundary.read(folder, f.name) or ""
            found[f"/{folder}/{f.name}"] = set(_VERSIONED.findall(text))
    return found


def containers_layer(ctx: Context) -> Layer:
    layer, b, table = Layer("containers"), ctx.boundary, rules.rules()["containers"]
    if ctx.container or ctx.wsl:
        layer.summary = "n/a: checked on the host (this is a container or WSL2)"
        return layer
    docker = next((p for p in table["docker"] if b.exists(p)), None)
    hook = next((p for p in table["toolkit_hook"] if b.exists(p)), None)
    specs = _cdi_specs(ctx)
    module = ctx.kernel_module_version
    layer.facts = {
        "docker": docker,
        "toolkit_hook": hook,
        "cdi_specs": {k: sorted(v) for k, v in specs.items()},
    }
    layer.status = OK
    parts = []
    if docker:
        parts.append(f"Docker ({'/' + docker}) with the NVIDIA Container Toolkit" if hook else "Docker")
        if not hook:
            # Sources: NVIDIA/nvidia-container-toolkit#871, NVIDIA/nvidia-container-toolkit#854.
            layer.warn(
                "Docker is installed but the NVIDIA Container Toolkit is not (no "
                "nvidia-container-runtime-hook): docker run --gpus all fails with 'could not select device "
                'driver "" with capabilities: [[gpu]]\'',
                table["install_toolkit"],
            )
    for path, versions in specs.items():
        stale = sorted(v for v in versions if module and v != module)
        parts.append(f"CDI spec {path}" + (f" (driver {', '.join(sorted(versions))})" if versions else ""))
        if stale:
            # Sources: podman-container-tools/podman#26233, NixOS/nixpkgs#420638.
            layer.warn(
                f"the CDI spec {path} names driver {', '.join(stale)} but the loaded driver is {module}: "
                "containers started with --device nvidia.com/gpu=all fail to find its files (it was written "
                "before a driver upgrade)",
                table["regenerate_cdi"].format(path=path),
            )
    layer.summary = ", ".join(parts) if parts else "no Docker and no CDI spec on this host (nothing to check)"
    return layer
