"""Probes the GPU-environment tests run inside the environment under test (`python -m tests.gpu_env.probes
NAME`), each printing one JSON line: a layer of the doctor alone, on the real boundary (real wheels, the real
loader, Debian's real libcuda / libnvidia-ml), or TensorFlow's and JAX's own loading code.

TensorFlow's loader is called as TensorFlow calls it: tsl::internal::DsoLoader::Get<Library>DsoHandle(), the
functions libtensorflow_framework.so.2 exports (nm -D), which dlopen a soname from inside that library, so
with its RUNPATH. Each returns absl::StatusOr<void*> in memory the caller passes (the Itanium C++ ABI for a
class with a destructor): the status word first (1: OK), then the handle.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import sys
from typing import Any

# The DsoLoader functions, by the rules.toml [libraries] key of the library each one loads.
TF_DSO_LOADERS = {
    "cudart": "CudaRuntime",
    "cublas": "Cublas",
    "cublaslt": "CublasLt",
    "cufft": "Cufft",
    "cusolver": "Cusolver",
    "cusparse": "Cusparse",
    "cudnn": "Cudnn",
    "nccl": "Nccl",
}


def _layer(name: str, framework: str) -> dict[str, Any]:
    from gpu_doctor import cuda, libraries, nvml
    from gpu_doctor.build import installed_build
    from gpu_doctor.context import Context
    from gpu_doctor.system import current

    b = current()
    ctx = Context(b, framework, installed_build(framework, b.metadata, b.prefix, b.env))
    probe = {
        "cuda_libraries": libraries.libraries_layer,
        "cuda_driver": cuda.cuda_layer,
        "nvml": nvml.nvml_layer,
    }
    layer = probe[name](ctx)
    return {"status": layer.status, "summary": layer.summary, "cause": layer.cause, "remedy": layer.remedy,
            "facts": layer.facts}  # fmt: skip


def tensorflow_loader() -> dict[str, Any]:
    """Whether TensorFlow's own loader opens each library (after `import tensorflow`, as in a real run)."""
    import tensorflow  # noqa: F401  (the project's loader hook acts on this import)

    folder = os.path.dirname(importlib.util.find_spec("tensorflow").origin)
    framework = ctypes.CDLL(os.path.join(folder, "libtensorflow_framework.so.2"))
    opened = {}
    for key, name in TF_DSO_LOADERS.items():
        function = f"Get{name}DsoHandle"
        fn = getattr(framework, f"_ZN3tsl8internal9DsoLoader{len(function)}{function}Ev")
        fn.restype, fn.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
        result = (ctypes.c_uint64 * 4)()
        fn(ctypes.addressof(result))
        opened[key] = result[0] == 1 and result[1] != 0
    return opened


def tensorflow_devices() -> dict[str, Any]:
    import tensorflow as tf

    return {"gpus": [d.name for d in tf.config.list_physical_devices("GPU")]}


def jax_devices() -> dict[str, Any]:
    import jax

    try:
        return {"gpus": [str(d) for d in jax.devices("gpu")]}
    except RuntimeError as err:
        return {"gpus": [], "error": str(err)}


PROBES = {
    "libraries": lambda fw="tensorflow": _layer("cuda_libraries", fw),
    "cuda-layer": lambda fw="tensorflow": _layer("cuda_driver", fw),
    "nvml-layer": lambda fw="tensorflow": _layer("nvml", fw),
    "tensorflow-loader": tensorflow_loader,
    "tensorflow-devices": tensorflow_devices,
    "jax-devices": jax_devices,
}


if __name__ == "__main__":
    print(json.dumps(PROBES[sys.argv[1]](*sys.argv[2:]), default=str), flush=True)
