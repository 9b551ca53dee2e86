"""``python -m gpu_doctor.child FRAMEWORK RESULTS [--compute]``: the doctor's framework probe, in a process of
its own. A framework that aborts (XLA's LLVM fatal error), segfaults or hangs takes this process down, not the
doctor, which then reports the framework's own last words (gpu_doctor.framework).

It imports the framework, lists its GPUs and, with ``--compute``, runs a matmul, a convolution with its
gradient (cuDNN) and an XLA-compiled function with exp/tanh (libdevice, ptxas) on the framework's GPU 0 and on
the CPU. Each result is one JSON line appended to RESULTS as soon as it is known ({"event": "start", "step"},
{"event": "framework", ...}, {"event": "compute", ...}). Everything the framework says goes to stderr, which
the doctor keeps; a line ``--- gpu_doctor.child: STEP`` there marks where each step starts.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any, TextIO

from gpu_doctor.framework import STEP_MARK, list_gpus


def _emit(out: TextIO, record: dict[str, Any]) -> None:
    out.write(json.dumps(record, default=str) + "\n")
    out.flush()


def _step(out: TextIO, step: str) -> None:
    print(STEP_MARK + step, file=sys.stderr, flush=True)
    _emit(out, {"event": "start", "step": step})


# --- The computations, per framework ------------------------------------------------------------------------
def inputs() -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    return {
        "a": rng.standard_normal((256, 256), dtype=np.float32),
        "img": rng.standard_normal((4, 16, 16, 3), dtype=np.float32),
        "kernel": rng.standard_normal((3, 3, 3, 8), dtype=np.float32),
    }


def _tensorflow(tf: Any, x: dict[str, Any], device: str) -> dict[str, Any]:
    with tf.device(device):
        a = tf.constant(x["a"])
        img, kernel = tf.constant(x["img"]), tf.Variable(x["kernel"])
        matmul = tf.linalg.matmul(a, a).numpy()
        with tf.GradientTape() as tape:
            out = tf.reduce_sum(tf.nn.conv2d(img, kernel, 1, "SAME") ** 2)
        grad = tape.gradient(out, kernel).numpy()
        xla = tf.function(lambda t: tf.reduce_sum(tf.tanh(t) * tf.exp(-tf.abs(t))), jit_compile=True)(
            a
        ).numpy()
    return {"matmul": matmul, "convolution": grad, "xla": xla}


def _jax(jax: Any, x: dict[str, Any], device: str) -> dict[str, Any]:
    jnp, dev = jax.numpy, jax.devices(device)[0]
    a, img, kernel = (jax.device_put(x[k], dev) for k in ("a", "img", "kernel"))

    def conv_loss(k: Any) -> Any:
        out = jax.lax.conv_general_dilated(img, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.sum(out**2)

    return {
        "matmul": jax.device_get(jnp.matmul(a, a, precision="highest")),
        "convolution": jax.device_get(jax.jit(jax.grad(conv_loss))(kernel)),
        "xla": jax.device_get(jax.jit(lambda t: jnp.sum(jnp.tanh(t) * jnp.exp(-jnp.abs(t))))(a)),
    }


def _torch(torch: Any, x: dict[str, Any], device: str) -> dict[str, Any]:
    dev = "cuda" if device == "gpu" else "cpu"
    a = torch.from_numpy(x["a"]).to(dev)
    img = torch.from_numpy(x["img"]).permute(0, 3, 1, 2).to(dev)
    kernel = torch.from_numpy(x["kernel"]).permute(3, 2, 0, 1).to(dev).requires_grad_(True)
    (torch.nn.functional.conv2d(img, kernel, padding=1) ** 2).sum().backward()
    return {
        "matmul": (a @ a).cpu().numpy(),
        "convolution": kernel.grad.cpu().numpy(),
        "xla": (torch.tanh(a) * torch.exp(-a.abs()))
        .sum()
        .cpu()
        .numpy(),  # torch has no XLA: elementwise math
    }


COMPUTE = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}
DEVICES = {"tensorflow": ("/GPU:0", "/CPU:0"), "jax": ("gpu", "cpu"), "torch": ("gpu", "cpu")}


def relative_errors(on_gpu: dict[str, Any], on_cpu: dict[str, Any]) -> dict[str, float]:
    import numpy as np

    errors = {}
    for name, value in on_gpu.items():
        ref = np.asarray(on_cpu[name], dtype=np.float64)
        diff = np.asarray(value, dtype=np.float64) - ref
        errors[name] = float(np.linalg.norm(diff) / max(float(np.linalg.norm(ref)), 1e-30))
    return errors


def main(argv: list[str]) -> int:
    framework, results, compute = argv[0], argv[1], "--compute" in argv[2:]
    with open(results, "a", encoding="utf-8") as out:
        _step(out, "import")
        try:
            gpus, reason = list_gpus(framework, importlib.import_module, capture=False)
        except Exception as err:  # the framework's own exception, reported as the import's failure
            _emit(out, {"event": "framework", "error": f"{type(err).__name__}: {err}"})
            return 0
        _emit(out, {"event": "framework", "gpus": gpus, "reason": reason})
        if not (compute and gpus):
            return 0
        _step(out, "compute")
        module = importlib.import_module(framework)
        gpu, cpu = DEVICES[framework]
        x = inputs()
        try:
            on_gpu = COMPUTE[framework](module, x, gpu)
        except Exception as err:
            _emit(out, {"event": "compute", "error": f"{type(err).__name__}: {err}"})
            return 0
        _emit(
            out,
            {
                "event": "compute",
                "relative_error": relative_errors(on_gpu, COMPUTE[framework](module, x, cpu)),
            },
        )
    return 0


if __name__ == "__main__":
    sys.stdout = sys.stderr  # a framework that prints to stdout: its words belong with the rest
    raise SystemExit(main(sys.argv[1:]))
