"""Write the image's build manifest: variant, base image, git revision, uv.lock hash, package versions.

Runs inside the image build with the venv's interpreter, so the versions are what was really installed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path


def tensorflow_build() -> dict:
    """CUDA/cuDNN versions and GPU architectures the installed TensorFlow wheel was built for."""
    import tensorflow as tf

    info = dict(tf.sysconfig.get_build_info())
    archs = info.get("cuda_compute_capabilities") or []
    return {
        "cuda_version": info.get("cuda_version"),
        "cudnn_version": info.get("cudnn_version"),
        "cuda_compute_capabilities": list(archs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lock", type=Path, required=True)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--base-image", required=True)
    parser.add_argument("--git-revision", required=True)
    parser.add_argument("--uv-version", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    packages = {dist.metadata["Name"].lower(): dist.version for dist in importlib.metadata.distributions()}
    manifest = {
        "image": "keras-workstation",
        "variant": args.variant,
        "base_image": args.base_image,
        "git_revision": args.git_revision,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "uv_lock_sha256": hashlib.sha256(args.lock.read_bytes()).hexdigest(),
        "uv_version": args.uv_version,
        "python": platform.python_version(),
        "os": _os_release(),
        "tensorflow_build": tensorflow_build(),
        "packages": dict(sorted(packages.items())),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"manifest: {len(packages)} packages, uv.lock {manifest['uv_lock_sha256'][:12]}", file=sys.stderr)
    return 0


def _os_release() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
