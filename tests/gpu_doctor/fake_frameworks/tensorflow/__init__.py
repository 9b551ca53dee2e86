"""A stand-in for TensorFlow in the doctor's child process (tests only): the few APIs gpu_doctor uses, on
numpy, behaving as tests/gpu_doctor/staging.py's Machine.framework("tensorflow", ...) spec says."""

from __future__ import annotations

import contextlib
import types
from typing import Any

import kw_fake_framework as fake
import numpy as np

__version__ = "2.21.0"
_SPEC = fake.spec("tensorflow")
fake.on_gpu(_SPEC, "import")  # at="import": the import itself aborts, exits or hangs
_device = ["/CPU:0"]


class Tensor:
    def __init__(self, value: Any, grad: Any = None) -> None:
        self.value, self.grad, self.where = np.asarray(value, dtype=np.float32), grad, _device[-1]

    def numpy(self) -> np.ndarray:
        scale = 1.5 if _SPEC.get("wrong") and self.value.ndim and "GPU" in self.where else 1.0
        return self.value * scale

    def __pow__(self, k: float) -> Tensor:
        return Tensor(self.value**k, self.grad and (lambda up: self.grad(up * k * self.value ** (k - 1))))

    def __mul__(self, other: Any) -> Tensor:
        return Tensor(self.value * _value(other))

    def __neg__(self) -> Tensor:
        return Tensor(-self.value)

    def __float__(self) -> float:
        return float(self.value)


class Variable(Tensor):
    pass


def _value(x: Any) -> np.ndarray:
    return x.value if isinstance(x, Tensor) else np.asarray(x, dtype=np.float32)


def _tensor(value: Any, grad: Any = None) -> Tensor:
    return Tensor(value, grad)


@contextlib.contextmanager
def device(name: str) -> Any:
    _device.append(name)
    try:
        yield
    finally:
        _device.pop()


def constant(value: Any) -> Tensor:
    if "GPU" in _device[-1]:
        fake.on_gpu(_SPEC, "first")
    return _tensor(value)


def _patches(img: np.ndarray, k: int) -> np.ndarray:
    pad = np.pad(img, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
    n, h, w, _ = img.shape
    return np.stack([pad[:, i : i + h, j : j + w, :] for i in range(k) for j in range(k)], axis=3).reshape(
        n, h, w, -1
    )


def _conv2d(img: Tensor, kernel: Tensor, strides: int, padding: str) -> Tensor:
    kh, _, _, o = kernel.value.shape
    patches = _patches(img.value, kh)  # (n, h, w, kh*kw*c), ordered like kernel.reshape(-1, o)
    out = patches @ kernel.value.reshape(-1, o)
    flat = patches.reshape(-1, patches.shape[-1])

    def grad(up: np.ndarray) -> dict[int, np.ndarray]:
        return {id(kernel): (flat.T @ up.reshape(-1, o)).reshape(kernel.value.shape)}

    return _tensor(out, grad)


def reduce_sum(t: Tensor) -> Tensor:
    return _tensor(t.value.sum(), t.grad and (lambda up: t.grad(np.full(t.value.shape, up))))


class GradientTape:
    def __enter__(self) -> GradientTape:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def gradient(self, out: Tensor, var: Tensor) -> Tensor:
        return _tensor(out.grad(np.ones_like(out.value))[id(var)])


def function(fn: Any, jit_compile: bool = False) -> Any:
    def compiled(*args: Any) -> Any:
        if jit_compile and "GPU" in _device[-1]:
            fake.on_gpu(_SPEC, "xla")
        return fn(*args)

    return compiled


def _list_physical_devices(kind: str) -> list[Any]:
    fake.log(_SPEC.get("log"))
    return [types.SimpleNamespace(name=n) for n in _SPEC.get("gpus", [])]


sysconfig = types.SimpleNamespace(
    get_build_info=lambda: {"is_cuda_build": _SPEC.get("cuda_build", True), "cuda_version": "12.5.1"}
)
config = types.SimpleNamespace(list_physical_devices=_list_physical_devices)
linalg = types.SimpleNamespace(matmul=lambda a, b: _tensor(_value(a) @ _value(b)))
nn = types.SimpleNamespace(conv2d=_conv2d)
tanh = lambda t: _tensor(np.tanh(_value(t)))  # noqa: E731
exp = lambda t: _tensor(np.exp(_value(t)))  # noqa: E731
abs = lambda t: _tensor(np.abs(_value(t)))  # noqa: E731
