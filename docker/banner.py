"""Start-up banner: is the GPU usable in this container, and if not, which layer is broken and what to run.

The diagnosis is the GPU doctor's (gpu_doctor, installed in the image's environment with the project), the
same code as `make doctor` and the smoke tests; this file only words it for a banner. The full screen:
`docker run --gpus all IMAGE doctor`.
"""

from __future__ import annotations

import os
import sys

from gpu_doctor import Diagnosis, diagnose

PREFIX = "[keras-workstation]"
FULL = "full diagnosis: docker run --gpus all IMAGE doctor"


def banner_lines(diagnosis: Diagnosis | None, variant: str) -> tuple[bool, list[str]]:
    """Return (GPU usable, banner lines). Each "no" names the broken layer, its cause and what to run."""
    if variant != "gpu":
        return False, [
            f"GPU: not used: this is the {variant.upper()} variant of the image (no CUDA libraries); build "
            "it with VARIANT=gpu for the GPU."
        ]
    assert diagnosis is not None
    if not diagnosis.gpu_found:
        return False, [
            f"GPU: not visible: no NVIDIA GPU found ({diagnosis.no_gpu_reason}). Start the container with "
            "`--gpus all` (Docker) or `--device nvidia.com/gpu=all` (Podman, CDI), with the NVIDIA "
            "Container Toolkit installed on the host."
        ]
    broken = diagnosis.first_broken
    if broken is not None:
        return False, [
            f"GPU: not usable: the {broken.title} layer is broken: {broken.cause}",
            f"GPU: run: {broken.remedy}",
            f"({FULL})",
        ]
    nvml, framework = diagnosis.layer("nvml"), diagnosis.layer("framework")
    lines = [f"GPU: {nvml.summary}", f"GPU: {framework.summary}"]
    lines += [
        f"warning: {layer.title}: {layer.cause}" for layer in diagnosis.layers if layer.status == "WARN"
    ]
    return True, lines


def main() -> int:
    variant = os.environ.get("KW_VARIANT", "gpu")
    diagnosis = None
    if variant == "gpu":
        diagnosis = diagnose(ask_framework="--no-tensorflow" not in sys.argv, ask_compute=False)
    ok, lines = banner_lines(diagnosis, variant)
    for line in lines:
        print(f"{PREFIX} {line}", flush=True)
    return 0 if ok or "--strict" not in sys.argv else 1


if __name__ == "__main__":
    raise SystemExit(main())
