"""`python -m smoke_tests.multi_gpu.measure`: the multi-GPU measurements, in a JAX process of their own.

The check process imports the active Keras backend (TensorFlow by default), so the multi-device work runs
here, on JAX, whatever that backend is. One process measures every part the checks asked for, in order, and
writes each part's result as it finishes (`<out>/<part>.json`, after `devices.json`), so a crash or a hang
costs only the parts not yet written. A part that raises is written as {"status": "error"} and the next part
runs.

    python -m smoke_tests.multi_gpu.measure --out DIR --level quick --system system.json
        [--parts per_gpu,p2p,all_reduce,training] [--seed 0] [--data MNIST_DIR] [--simulated]
        [--stand-in] [--fault slow:2:1.5 | --fault wrong_all_reduce:3 | --fault duplicate_shard]

--fault is a test hook (a negative control): a device made slower at the measurement boundary (its timed
windows read FACTOR times longer), an all-reduce that returns a wrong element on one device, a data-parallel
run whose second device gets the first one's data.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_doctor.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from smoke_tests.multi_gpu import devices as device_list
from smoke_tests.multi_gpu import interconnect, siblings
from smoke_tests.settings import level_settings
from workloads.atomic import write_json

PARTS = ("per_gpu", "p2p", "all_reduce", "training")
GIB = 2**30


@dataclass(frozen=True)
class Faults:
    """The negative controls a test asks for (--fault)."""

    slow_device: int | None = None
    slow_factor: float = 1.0
    wrong_all_reduce_on: int | None = None
    duplicate_shard: bool = False

    @classmethod
    def parse(cls, specs: list[str]) -> Faults:
        fields: dict[str, Any] = {}
        for spec in specs:
            kind, *args = spec.split(":")
            if kind == "slow" and len(args) == 2:
                fields["slow_device"], fields["slow_factor"] = int(args[0]), float(args[1])
            elif kind == "wrong_all_reduce" and len(args) == 1:
                fields["wrong_all_reduce_on"] = int(args[0])
            elif kind == "duplicate_shard" and not args:
                fields["duplicate_shard"] = True
            else:
                raise ValueError(
                    f"--fault {spec!r}: slow:DEVICE:FACTOR, wrong_all_reduce:DEVICE or duplicate_shard"
                )
        return cls(**fields)

    def active(self) -> bool:
        return self != Faults()

    def slowness(self, *indices: int) -> float:
        return self.slow_factor if self.slow_device in indices else 1.0


Clock = Callable[[], float]


def _timed(run: Callable[..., Any], prepare: Callable[[], Any] | None, slow: float, clock: Clock) -> float:
    """Seconds of one run on `clock`; a slowed device (a fault, at the measurement boundary) reads `slow`
    times as long."""
    arg = prepare() if prepare else None
    start = clock()
    run(arg) if prepare else run()
    return (clock() - start) * slow


def clock_for(simulated: bool) -> Clock:
    """Wall time on GPUs. On simulated devices the process's CPU time: they share the CPU with every other
    process on the machine, and CPU time counts only this process's own work (the best of three matmul
    repeats of 8 simulated devices, under a load average of 13 on 2 cores: wall time 0.96-2.97 of the median,
    CPU time 0.97-1.10)."""
    return time.process_time if simulated else time.perf_counter


Maker = Callable[[], tuple[Callable[..., Any], Callable[[], Any] | None]]


@dataclass
class Measure:
    """One figure of several members (devices or pairs), measured in interleaved rounds."""

    name: str
    unit: str
    work: float  # units of the figure per run (TFLOP, GB)
    makers: dict[Any, Maker]  # member: () -> (run, prepare or None), with fresh buffers
    slow: dict[Any, float]  # member: the --fault slowdown (1.0: none)
    clock: Clock

    def round(self, repeats: int) -> dict[Any, dict[str, float]]:
        """A warm-up each, then `repeats` rounds through every member in turn, each from another start (a
        load spike on a shared machine, or whatever the previous member left behind, then hits all members
        alike): each member's median (its figure), best (the sibling rule's) and spread."""
        # Fresh buffers each round: a buffer that happens to sit badly in memory is not measured every round.
        runs = {member: make() for member, make in self.makers.items()}
        for member, (run, prepare) in runs.items():
            _timed(run, prepare, self.slow[member], self.clock)
        seconds: dict[Any, list[float]] = {member: [] for member in runs}
        members = list(runs)
        for repeat in range(repeats):
            shift = repeat * len(members) // repeats  # each repeat starts elsewhere: no member always last
            for member in members[shift:] + members[:shift]:
                run, prepare = runs[member]
                seconds[member].append(_timed(run, prepare, self.slow[member], self.clock))
        out = {}
        for member, times in seconds.items():
            values = [self.work / t for t in times]
            median = statistics.median(values)
            spread = (max(values) - min(values)) / median if median else 0.0
            out[member] = {"median": median, "best": max(values), "spread": spread}
        return out


def member_key(member: Any) -> str:
    """A device's index, or a pair's "source-target", as the JSON keys of the results."""
    return "-".join(map(str, member)) if isinstance(member, tuple) else str(member)


def measure_with_confirmation(measure: Measure, repeats: int, confirm: int, groups: dict[Any, str]) -> dict:
    """A round; while a member is behind its siblings in every round so far, up to `confirm` more rounds of
    the whole figure (siblings.confirmed judges them all; `confirm` 0: a figure the rule does not judge)."""
    first = measure.round(repeats)
    rounds = [{m: r["best"] for m, r in first.items()}]
    while len(rounds) <= confirm and siblings.confirmed(rounds, groups):
        rounds.append({m: r["best"] for m, r in measure.round(repeats).items()})
    return {
        "unit": measure.unit,
        "values": {member_key(m): r["median"] for m, r in first.items()},
        "spread": {member_key(m): r["spread"] for m, r in first.items()},
        "rounds": [{member_key(m): v for m, v in values.items()} for values in rounds],
    }


# --- The parts ----------------------------------------------------------------------------------------------
@dataclass
class Context:
    devices: list[Any]  # JAX devices
    named: list[device_list.Device]  # the same, joined to NVML's picture
    system: dict[str, Any]
    cfg: dict[str, Any]  # the level's [multi_gpu] settings
    kind: str  # "gpu" or "cpu": which of each setting applies
    faults: Faults
    seed: int
    data: Path | None
    level: str

    @property
    def clock(self) -> Clock:
        return clock_for(self.kind == "cpu")

    def setting(self, key: str) -> Any:
        value = self.cfg[key]
        return value[self.kind] if isinstance(value, dict) else value


def per_gpu(ctx: Context) -> dict[str, Any]:
    """Matmul TFLOP/s (fp32; tf32 and bf16 on GPUs with compute capability 8.0+), host-to-device and
    device-to-host copies, and device memory bandwidth, on every device."""
    from smoke_tests import framework_ops
    from smoke_tests.multi_gpu import ops

    n, steps, mib = ctx.setting("matmul_n"), ctx.setting("matmul_steps"), ctx.setting("copy_mib")
    copies, mem_mib, mem_steps = ctx.setting("copy_steps"), ctx.setting("mem_mib"), ctx.setting("mem_steps")
    precisions = ["fp32"]
    ccs = [str(d.nvml.get("compute_capability", "0.0")) for d in ctx.named if not d.simulated]
    if ctx.kind == "gpu" and ccs and all(tuple(int(x) for x in c.split(".")) >= (8, 0) for c in ccs):
        precisions += ["tf32", "bf16"]
    slow = {d.id: ctx.faults.slowness(d.id) for d in ctx.devices}

    def per_device(name: str, unit: str, work: float, make: Callable[[int, Any], Any]) -> Measure:
        makers = {d.id: functools.partial(make, i, d) for i, d in enumerate(ctx.devices)}
        return Measure(name, unit, work, makers, slow, ctx.clock)

    measures = [
        per_device(f"{p}_tflops", "TFLOP/s", 2 * n**3 * steps / 1e12,
                   lambda i, d, p=p: (framework_ops.matmul_runner(n, p, ctx.kind, steps, ctx.seed, i), None))
        for p in precisions
    ]  # fmt: skip
    copied = mib * 2**20 * copies / 1e9
    measures += [
        per_device("h2d_gbs", "GB/s", copied,
                   lambda i, d: (framework_ops.h2d_runner(mib, copies, ctx.kind, i), None)),
        per_device("d2h_gbs", "GB/s", copied, lambda i, d: ops.d2h_runner(d, mib, copies)[::-1]),
        per_device("mem_gbs", "GB/s", 2 * mem_mib * 2**20 * mem_steps / 1e9,
                   lambda i, d: (ops.memory_runner(d, mem_mib, mem_steps), None)),
    ]  # fmt: skip
    groups = {d.index: d.group for d in ctx.named}
    repeats, confirm, simulated = ctx.setting("repeats"), ctx.setting("confirm_rounds"), ctx.kind == "cpu"
    figures = {
        m.name: measure_with_confirmation(
            m, repeats, confirm if siblings.compared(m.name, simulated) else 0, groups
        )
        for m in measures
    }
    return {"status": "ok", "figures": figures, "repeats": repeats,
            "sizes": {"matmul_n": n, "matmul_steps": steps, "copy_mib": mib, "copy_steps": copies,
                      "mem_mib": mem_mib, "mem_steps": mem_steps}}  # fmt: skip


def p2p(ctx: Context) -> dict[str, Any]:
    """A copy-bandwidth matrix: every ordered pair of devices, one direction at a time."""
    from smoke_tests.multi_gpu import ops

    mib, copies = ctx.setting("p2p_mib"), ctx.setting("p2p_steps")
    pairs = list(itertools.permutations(ctx.devices, 2))
    makers = {(a.id, b.id): functools.partial(lambda a, b: (ops.p2p_runner(a, b, mib, copies), None), a, b)
              for a, b in pairs}  # fmt: skip
    slow = {(a.id, b.id): ctx.faults.slowness(a.id, b.id) for a, b in pairs}
    measure = Measure("p2p_gbs", "GB/s", mib * 2**20 * copies / 1e9, makers, slow, ctx.clock)
    groups = interconnect.pair_groups(ctx.named, ctx.system)
    confirm = ctx.setting("confirm_rounds") if siblings.compared(measure.name, ctx.kind == "cpu") else 0
    result = measure_with_confirmation(measure, ctx.setting("repeats"), confirm, groups)
    wrong = {f"{a.id}-{b.id}": ops.p2p_wrong(a, b, mib) for a, b in pairs}  # the bytes that arrived
    return {"status": "ok", "matrix": result, "wrong": wrong, "mib": mib, "copies": copies}


def all_reduce(ctx: Context) -> dict[str, Any]:
    """An all-reduce sweep over sizes: algbw and busbw per size, and the wrong elements per device."""
    from smoke_tests.multi_gpu import ops

    n, iters, repeats = len(ctx.devices), ctx.setting("all_reduce_iters"), ctx.setting("repeats")
    rows = []
    for mib in ctx.setting("all_reduce_mib"):
        run = ops.all_reduce_runner(ctx.devices, mib, iters, ctx.faults.wrong_all_reduce_on)
        started = time.perf_counter()
        run()  # compiles; its result is checked too
        compile_s = time.perf_counter() - started
        wrong = list(run.wrong)
        times = []
        for _ in range(repeats):
            times.append(_timed(run, None, 1.0, ctx.clock))
            wrong = [max(a, b) for a, b in zip(wrong, run.wrong, strict=True)]
        algbw = [mib * 2**20 * iters / t / 1e9 for t in times]
        median = statistics.median(algbw)
        rows.append({"mib": mib, "algbw_gbs": median, "busbw_gbs": interconnect.busbw(median, n),
                     "spread": (max(algbw) - min(algbw)) / median, "wrong": wrong,
                     "compile_s": round(compile_s, 3)})  # fmt: skip
    return {"status": "ok", "devices": n, "iters": iters, "repeats": repeats, "sizes": rows}


def training(ctx: Context) -> dict[str, Any]:
    from smoke_tests.multi_gpu.training import data_parallel

    return data_parallel(ctx)


RUN = {"per_gpu": per_gpu, "p2p": p2p, "all_reduce": all_reduce, "training": training}


# --- The process --------------------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m smoke_tests.multi_gpu.measure", description=__doc__.splitlines()[0]
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--level", required=True)
    p.add_argument(
        "--system", type=Path, required=True, help="NVML's picture (the check process's system.json)"
    )
    p.add_argument("--parts", default=",".join(PARTS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", type=Path)
    p.add_argument("--simulated", action="store_true", help="measure the CPU's JAX devices (XLA_FLAGS)")
    p.add_argument("--stand-in", action="store_true", help="test hook: simulated devices stand in for NVML's")
    p.add_argument("--fault", action="append", default=[], help="test hook: a negative control")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        faults = Faults.parse(args.fault)
        cfg = level_settings(args.level)["multi_gpu"]
        parts = [p for p in args.parts.split(",") if p]
        if unknown := [p for p in parts if p not in RUN]:
            raise ValueError(f"--parts: unknown {', '.join(unknown)} (choose from {', '.join(PARTS)})")
        system = json.loads(args.system.read_text())
    except (ValueError, KeyError, OSError) as err:
        print(f"measure: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    os.environ["KERAS_BACKEND"] = "jax"  # the training part's Keras, whatever the check process uses
    # keras.utils.set_random_seed imports TensorFlow when it is installed, only to seed tf.random: this
    # process runs JAX alone, and TensorFlow's import is seconds of CPU (and host memory) for nothing.
    sys.modules["tensorflow"] = None  # type: ignore[assignment]
    import jax

    device_list.STAND_IN_FOR_NVML = args.stand_in
    devices = jax.devices("cpu") if args.simulated else jax.devices()
    args.out.mkdir(parents=True, exist_ok=True)
    from smoke_tests.multi_gpu import ops

    report = ops.device_report(devices)
    write_json(args.out / "devices.json", {"devices": report, "faults": args.fault, "jax": jax.__version__})
    named, _ = device_list.join(report, system)
    kind = "cpu" if args.simulated else "gpu"
    ctx = Context(devices, named, system, cfg, kind, faults, args.seed, args.data, args.level)
    for part in parts:
        started = time.perf_counter()
        print(f"measure: {part} on {len(devices)} devices", flush=True)
        try:
            result = RUN[part](ctx)
        except Exception as err:
            traceback.print_exc()
            result = {"status": "error", "error": f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"}
        result["seconds"] = round(time.perf_counter() - started, 3)
        write_json(args.out / f"{part}.json", result)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
