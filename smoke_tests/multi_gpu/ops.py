"""The JAX operations the multi-GPU child times, each synchronized before it returns (matmul and
host-to-device copies are smoke_tests/framework_ops.py's, on the device they are given).

Bandwidths are GB/s (1e9 bytes per second). Device-to-device copies are `jax.device_put` from one device's
array to another: on GPUs XLA enables CUDA peer access between every pair that allows it
(openxla/xla xla/pjrt/gpu/gpu_helpers.cc, EnablePeerAccess), so the copy goes over NVLink or PCIe P2P.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

Runner = Callable[[], None]


def cuda_bus_ids(ordinals: list[int]) -> dict[int, str]:
    """Each CUDA ordinal's PCI bus id from the driver (cuDeviceGetPCIBusId, as the doctor's CUDA layer reads
    it): what joins JAX's GPUs to NVML's."""
    from gpu_doctor import cuda
    from gpu_doctor.system import open_libcuda

    drv = open_libcuda()
    drv.cuInit(0)
    found = (cuda.device(drv, ordinal) for ordinal in ordinals)
    return {d["ordinal"]: d["pci_bus_id"] for d in found if d and d["pci_bus_id"]}


def device_report(devices: list[Any]) -> list[dict[str, Any]]:
    """What the check process needs to name each device: JAX's id, platform, kind and (GPUs) PCI bus id."""
    gpus = [d.local_hardware_id for d in devices if d.platform == "gpu"]
    bus = cuda_bus_ids(gpus) if gpus else {}
    return [
        {
            "id": d.id,
            "platform": d.platform,
            "kind": d.device_kind,
            "pci_bus_id": bus.get(d.local_hardware_id),
        }
        for d in devices
    ]


def d2h_runner(device: Any, mib: int, steps: int) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    """(prepare, run): `prepare()` puts `steps` fresh arrays on `device` (untimed; JAX caches an array's host
    copy, so each timed copy needs its own); `run(arrays)` copies each to host memory."""
    import jax

    base = jax.device_put(np.ones(mib * 2**20 // 4, dtype=np.float32), device)
    simulated = device.platform == "cpu"

    def prepare() -> Any:
        arrays = [base + float(i) for i in range(steps)]
        jax.block_until_ready(arrays)
        return arrays

    def run(arrays: Any) -> None:
        for a in arrays:
            # A CPU device's array is host memory already: np.asarray would be a view, so copy it.
            np.array(a, copy=True) if simulated else np.asarray(a)

    return prepare, run


def memory_runner(device: Any, mib: int, steps: int) -> Runner:
    """`steps` passes of x + 1 over a `mib` MiB array on `device`, in one compiled loop: each pass reads and
    writes the array once (2 x mib MiB of memory traffic)."""
    import jax
    import jax.numpy as jnp

    x = jax.device_put(jnp.zeros(mib * 2**20 // 4, dtype=jnp.float32), device)
    loop = jax.jit(lambda v: jax.lax.fori_loop(0, steps, lambda i, a: a + 1.0, v))

    def run() -> None:
        loop(x).block_until_ready()

    return run


def p2p_runner(source: Any, target: Any, mib: int, steps: int) -> Runner:
    """`steps` copies of a `mib` MiB array from `source` to `target`."""
    import jax

    x = jax.device_put(np.ones(mib * 2**20 // 4, dtype=np.float32), source)
    x.block_until_ready()

    def run() -> None:
        for _ in range(steps):
            y = jax.device_put(x, target)
        y.block_until_ready()

    return run


@functools.cache
def _pattern(count: int) -> tuple[Any, Any]:
    """(make, wrong): jitted once per size (a new closure each call would compile again for every pair)."""
    import jax
    import jax.numpy as jnp

    def make() -> Any:
        return (jnp.arange(count, dtype=jnp.int32) % 251).astype(jnp.float32)

    return jax.jit(make), jax.jit(lambda y: jnp.sum(y != make()))


def p2p_wrong(source: Any, target: Any, mib: int) -> int:
    """Copy a patterned `mib` MiB array from `source` to `target` and count, on `target`, the elements that
    did not arrive as sent."""
    import jax

    make, wrong = _pattern(mib * 2**20 // 4)
    with jax.default_device(source):
        pattern = make()
    return int(wrong(jax.device_put(pattern, target)))


def all_reduce_runner(devices: list[Any], mib: int, iters: int, wrong_on: int | None = None) -> Runner:
    """`iters` all-reduces (psum) of a `mib` MiB float32 buffer per device in one compiled loop; each call
    returns the number of wrong elements per device in the last result, like nccl-tests' #wrong.

    Device r holds (k + r) mod 7 at element k: integers, so the sum is exact in any order and any wrong
    element is wrong. Each iteration feeds its result's first element back into the buffer (unchanged when
    correct), so XLA cannot hoist the all-reduce out of the loop. `wrong_on` (a negative control): that
    device's result gets one wrong element, at the collective's output.
    """
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    n, count = len(devices), mib * 2**20 // 4
    mesh = Mesh(np.array(devices), ("d",))

    def body(x: Any) -> tuple[Any, Any]:
        k = jnp.arange(count, dtype=jnp.int32)
        expected = sum((k + r) % 7 for r in range(n)).astype(jnp.float32)
        rank = jax.lax.axis_index("d")

        def step(_: Any, carry: tuple[Any, Any]) -> tuple[Any, Any]:
            buf, _out = carry
            out = jax.lax.psum(buf, "d")
            if wrong_on is not None:
                out = out.at[count // 2].add(jnp.where(rank == wrong_on, 1.0, 0.0))
            return buf.at[0].add(out[0] - expected[0]), out

        _, out = jax.lax.fori_loop(0, iters, step, (x, jnp.zeros_like(x)))
        return jnp.sum(out != expected)[None]

    # check_vma=False: the loop's carry mixes per-device and all-reduced values (JAX 0.10's shard_map).
    fn = jax.jit(jax.shard_map(body, mesh=mesh, in_specs=P("d"), out_specs=P("d"), check_vma=False))

    def initial(_: Any) -> Any:  # made on each device: no n x mib MiB buffer in host memory
        return ((jnp.arange(count, dtype=jnp.int32) + jax.lax.axis_index("d")) % 7).astype(jnp.float32)

    make = jax.jit(jax.shard_map(initial, mesh=mesh, in_specs=P("d"), out_specs=P("d")))
    x = make(jax.device_put(np.zeros(n, dtype=np.float32), NamedSharding(mesh, P("d"))))
    wrong: list[int] = []

    def run() -> None:
        wrong[:] = np.asarray(fn(x)).tolist()  # waits for the loop; a few bytes per device

    run.wrong = wrong  # type: ignore[attr-defined]
    return run
