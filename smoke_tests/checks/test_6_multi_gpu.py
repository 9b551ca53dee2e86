"""Every GPU in the machine: per-GPU figures against their expected values and their identical siblings, the
interconnect (NVML's topology and a P2P copy matrix), an all-reduce sweep checked for wrong values, and
data-parallel training of the MNIST recipe across all devices. Stable ids: multi_gpu/per_gpu_outliers,
multi_gpu/p2p_bandwidth, multi_gpu/all_reduce_busbw, multi_gpu/data_parallel_training.

The measurements run on JAX in one measuring process of their own (smoke_tests/multi_gpu/measure.py, started
by the first of these checks); these checks judge what it wrote. With one device they are n/a; on simulated
devices (XLA_FLAGS=--xla_force_host_platform_device_count=N, no GPU) they run the same way and say so.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gpu_doctor.nvml import health_problems
from gpu_doctor.topology import label as pair_label
from smoke_tests.multi_gpu import child, interconnect, siblings
from smoke_tests.multi_gpu import devices as device_list
from smoke_tests.multi_gpu.child import ChildFailed, MeasureChild
from smoke_tests.plugin import CheckRecord, SmokeOptions
from smoke_tests.speed import check_not_throttled, expected_for, expected_table

# check -> the part of the measuring process it judges
PARTS = {
    "per_gpu_outliers": "per_gpu",
    "p2p_bandwidth": "p2p",
    "all_reduce_busbw": "all_reduce",
    "data_parallel_training": "training",
}
SIMULATED = (
    "simulated devices: {n} JAX devices on this machine's CPU (XLA_FLAGS="
    "--xla_force_host_platform_device_count={n}), no GPU: the checks run as on GPUs, and their figures "
    "prove the method, not a speed"
)
DERATE = expected_table()["derate"]  # DCGM's derating, the speed checks' own
TENSORFLOW = (
    "multi-GPU training is checked on JAX (keras.distribution.DataParallel); with the TensorFlow backend "
    "Keras 3 distributes through tf.distribute.MirroredStrategy, which this check does not run"
)


@dataclass
class Session:
    """The module's measuring process and the device list it reported (read once)."""

    plan: device_list.Plan
    child: MeasureChild | None = None
    limit: float = 300.0
    system: dict[str, Any] = field(default_factory=dict)
    devices: list[device_list.Device] | None = None
    problems: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def multi_gpu(
    request: pytest.FixtureRequest,
    system: dict[str, Any],
    smoke_options: SmokeOptions,
    level: Mapping[str, Any],
    workload_data: tuple[Path | None, str],
    report_dir: Path,
) -> Iterator[Session]:
    session = Session(device_list.plan(system, os.environ), system=system)
    session.limit = max(0.9 * level["check_timeout_s"], level["check_timeout_s"] - 10)
    if session.plan.mode is not None:
        chosen = [
            i.originalname.removeprefix("test_") for i in request.session.items if i.module is request.module
        ]
        argv, env = child.command(report_dir / "multi_gpu", session.plan, smoke_options.level.name,
                                  report_dir / "system.json", [PARTS[c] for c in chosen], smoke_options.seed,
                                  workload_data[0])  # fmt: skip
        session.child = child.MeasureChild(report_dir / "multi_gpu", argv, env)
        session.child.start()
    yield session
    if session.child is not None:
        session.child.stop()


def _devices(session: Session, check: CheckRecord) -> list[device_list.Device]:
    """The measured devices, or the check's n/a or failure when there are not two of them to measure."""
    if session.plan.mode is None:
        pytest.skip(session.plan.reason)
    assert session.child is not None
    if session.devices is None:
        started = time.perf_counter()
        report = _result(session, "devices")
        check.time("start-up", time.perf_counter() - started)
        session.devices, session.problems = device_list.join(report["devices"], session.system)
    found = session.devices
    if child.FAULTS or child.MEASURE != child.DEFAULT_MEASURE:
        check.warn(f"test hook: {child.MEASURE} {child.FAULTS}: not a real measurement")
    if session.plan.mode == "gpu" and all(d.simulated for d in found):
        pytest.fail(f"NVML lists {session.plan.count} GPUs but JAX sees none (its devices: CPU): the "
                    "multi-GPU checks run on JAX's CUDA backend, and this environment's jaxlib has "
                    "none")  # fmt: skip
    for problem in session.problems:
        check.warn(problem)
    if len(found) < 2:
        pytest.skip(f"n/a: JAX sees {len(found)} device(s); the multi-GPU checks need two or more")
    if any(d.simulated for d in found):
        check.warn(SIMULATED.format(n=len(found)))
        check.detail("simulated", True)
    check.detail("devices", [d.as_dict() for d in found])
    return found


def _result(session: Session, part: str) -> dict[str, Any]:
    assert session.child is not None
    try:
        result = session.child.result(part, session.limit)
    except ChildFailed as err:
        pytest.fail(str(err))
    if result.get("status") == "error":
        pytest.fail(f"the {part} measurement failed: {result['error']} (log: multi_gpu/measure.log)")
    return result


@contextlib.contextmanager
def _telemetry(check: CheckRecord, found: list[device_list.Device], label: str) -> Iterator[None]:
    """NVML telemetry of every real GPU while its part is measured; a GPU that throttled invalidates it."""
    gpus = [d for d in found if not d.simulated and isinstance(d.nvml.get("index"), int)]
    if not gpus:
        yield
        return
    from gpu_doctor.telemetry import TelemetrySampler

    with contextlib.ExitStack() as stack:
        samplers = {d.label(): stack.enter_context(TelemetrySampler(index=d.nvml["index"])) for d in gpus}
        yield
    windows = {f"{label} on {name}": s.samples for name, s in samplers.items()}
    for name, samples in windows.items():
        check.add_telemetry(name, samples)
    check_not_throttled(windows)


def _measured(session: Session, check: CheckRecord, part: str) -> tuple[list[device_list.Device], dict]:
    found = _devices(session, check)
    started = time.perf_counter()
    with _telemetry(check, found, part):
        result = _result(session, part)
    check.time("steady", time.perf_counter() - started)
    return found, result


def _floor(device: device_list.Device, figure: str) -> tuple[float | None, float | None]:
    """(expected, floor) of one device's figure from smoke_tests/expected_gpus.toml: real GPUs only, and only
    the figures the table has (matmul and memory bandwidth; copies depend on the slot: reported)."""
    if device.simulated:
        return None, None
    entry = expected_for(device.name)
    expected = entry.get(f"expected_{figure.removesuffix('_tflops')}") if entry else None
    return (expected, DERATE * expected) if expected else (None, None)


# --- The checks ---------------------------------------------------------------------------------------------
def test_per_gpu_outliers(check: CheckRecord, multi_gpu: Session) -> None:
    found, result = _measured(multi_gpu, check, "per_gpu")
    named = {str(d.index): d for d in found}
    groups = {key: d.group for key, d in named.items()}
    table = {key: {**d.as_dict(), "figures": {}, "health": [], "problems": []} for key, d in named.items()}

    def flag(key: str, problem: str) -> None:
        table[key]["problems"].append(problem)

    for figure, measured in result["figures"].items():
        unit = measured["unit"]
        judged = siblings.compared(figure, any(d.simulated for d in found))
        behind = siblings.confirmed(measured["rounds"], groups) if judged else {}
        for key, value in measured["values"].items():
            expected, floor = _floor(named[key], figure)
            entry = {"value": value, "unit": unit, "spread": measured["spread"][key], "expected": expected,
                     "floor": floor, "behind_siblings": behind.get(key, {}).get("behind")}  # fmt: skip
            table[key]["figures"][figure] = entry
            check.figure(f"gpu{key} {figure}", value, unit, better="higher", spread=entry["spread"])
            if floor is not None and value < floor:
                flag(key, f"{figure} {value:.3g} {unit} below its floor {floor:.3g} ({DERATE} x expected "
                          f"{expected:.3g})")  # fmt: skip
            if key in behind:
                b = behind[key]
                flag(key, f"{figure} {b['value']:.3g} {unit}, {b['behind']:.0%} behind the median of its "
                          f"{b['siblings']} identical siblings ({b['siblings_median']:.3g})")  # fmt: skip
    for key, device in named.items():
        for problem, remedy in health_problems(device.nvml) if device.nvml else []:
            table[key]["health"].append(problem)
            flag(key, f"{problem} -> run: {remedy}")
    check.detail("per_device", list(table.values()))
    check.detail("rule", f"each figure against its floor (expected_gpus.toml, x{DERATE}) and against the "
                 f"median of its identical siblings (more than {siblings.TOLERANCE:.0%} behind, in every "
                 "round: a flagged device is measured again)")  # fmt: skip
    check.detail("sizes", result["sizes"])
    problems = [f"{named[key].label()}: {p}" for key in named for p in table[key]["problems"]]
    if problems:
        pytest.fail(f"{len(problems)} per-GPU problem(s): " + "; ".join(problems))


def test_p2p_bandwidth(check: CheckRecord, multi_gpu: Session) -> None:
    system = multi_gpu.system
    faults = interconnect.link_faults(system) if len(system.get("gpus", [])) >= 2 else []
    for note in interconnect.link_warnings(system) if len(system.get("gpus", [])) >= 2 else []:
        check.warn(note)
    topology = system.get("topology") or {}
    check.detail("topology", {f"GPU {p['gpus'][0]} - GPU {p['gpus'][1]}": {"link": pair_label(p), **p}
                              for p in topology.get("pairs", [])})  # fmt: skip
    check.detail("link_faults", [{"gpus": list(named), "problem": text} for named, text in faults])
    problems = [text for _, text in faults]
    try:
        found, result = _measured(multi_gpu, check, "p2p")
    except (pytest.fail.Exception, pytest.skip.Exception) as err:  # NVML's faults stand without a measurement
        if problems:
            pytest.fail(f"{len(problems)} interconnect problem(s): " + "; ".join([*problems, str(err)]))
        raise
    by_key = {str(d.index): d for d in found}
    matrix = result["matrix"]
    gpus = {g["index"]: g for g in system.get("gpus", []) if not g.get("error")}
    pairs = {tuple(p["gpus"]): p for p in topology.get("pairs", [])}
    rows = []
    for key, value in matrix["values"].items():
        a, b = (by_key[k] for k in key.split("-"))
        nvml_pair = pairs.get(tuple(sorted((a.nvml.get("index", -1), b.nvml.get("index", -1)))))
        expected = interconnect.expected_pair(nvml_pair, gpus) if nvml_pair and not a.simulated else None
        floor = DERATE * expected["gbs"] if expected and expected["gbs"] else None
        rows.append({"from": a.index, "to": b.index, "gbs": value, "spread": matrix["spread"][key],
                     "expected": expected, "floor": floor, "wrong": result["wrong"].get(key)})  # fmt: skip
        if floor is not None and value < floor:
            problems.append(f"{a.label()} -> {b.label()}: {value:.3g} GB/s below its floor {floor:.3g} "
                            f"({DERATE} x {expected['gbs']:.3g}: {expected['basis']})")  # fmt: skip
        if result["wrong"].get(key):
            problems.append(f"{a.label()} -> {b.label()}: {result['wrong'][key]} elements arrived wrong")
    groups = {f"{a}-{b}": g for (a, b), g in interconnect.pair_groups(found, system).items()}
    judged = siblings.compared("p2p_gbs", any(d.simulated for d in found))
    behind = siblings.confirmed(matrix["rounds"], groups) if judged else {}
    for key, b in behind.items():
        src, dst = (by_key[k] for k in key.split("-"))
        problems.append(f"{src.label()} -> {dst.label()}: {b['value']:.3g} GB/s, {b['behind']:.0%} behind "
                        f"the median of its {b['siblings']} sibling pairs "
                        f"({b['siblings_median']:.3g})")  # fmt: skip
    if not judged:
        check.detail("sibling rule", "not applied to copies between simulated devices (see siblings.py)")
    values = sorted(matrix["values"].values())
    check.figure("p2p_min_gbs", values[0], "GB/s", better="higher")
    check.figure("p2p_median_gbs", values[len(values) // 2], "GB/s", better="higher")
    check.detail("matrix", rows)
    check.detail("size", f"{result['mib']} MiB x {result['copies']} copies per pair and repeat")
    from smoke_tests.multi_gpu.charts import p2p_heatmap

    started = time.perf_counter()
    flagged = {tuple(int(k) for k in key.split("-")) for key in behind}
    flagged |= {(r["from"], r["to"]) for r in rows if r["floor"] is not None and r["gbs"] < r["floor"]}
    labels = [f"{d.index}" + (f" {d.nvml.get('pci_bus_id', '')[-7:]}" if d.nvml else "") for d in found]
    title = "P2P copy bandwidth, GB/s" + (" (simulated devices)" if found[0].simulated else "")
    check.plot(p2p_heatmap(labels, {(r["from"], r["to"]): r["gbs"] for r in rows}, flagged, title,
                           check.out_dir / "p2p_matrix.png"))  # fmt: skip
    check.time("plots", time.perf_counter() - started)
    if problems:
        pytest.fail(f"{len(problems)} interconnect problem(s): " + "; ".join(problems))


def test_all_reduce_busbw(check: CheckRecord, multi_gpu: Session) -> None:
    found, result = _measured(multi_gpu, check, "all_reduce")
    system = multi_gpu.system
    gpus = {g["index"]: g for g in system.get("gpus", []) if not g.get("error")}
    rows = result["sizes"]
    problems = []
    for row in rows:
        for position, count in enumerate(row["wrong"]):
            if count:
                problems.append(f"the all-reduce of {row['mib']} MiB returned {count} wrong element(s) on "
                                f"{found[position].label()} (nccl-tests' #wrong)")  # fmt: skip
    peak = max(rows, key=lambda r: r["busbw_gbs"])
    check.figure("busbw_gbs", peak["busbw_gbs"], "GB/s", better="higher", mib=peak["mib"])
    check.figure("algbw_gbs", peak["algbw_gbs"], "GB/s", mib=peak["mib"])
    expected = floor = None
    if not found[0].simulated and system.get("topology"):
        expected = interconnect.expected_busbw(system["topology"], gpus)
        floor = DERATE * expected["gbs"] if expected["gbs"] else None
        check.detail("expected", expected)
        if reference := interconnect.reference(gpus):
            check.detail("reference", reference)
        if floor is not None and peak["busbw_gbs"] < floor:
            problems.append(f"busbw {peak['busbw_gbs']:.3g} GB/s (at {peak['mib']} MiB) below its floor "
                            f"{floor:.3g} "
                            f"({DERATE} x {expected['gbs']:.3g}: {expected['basis']})")  # fmt: skip
    check.detail("sizes", rows)
    check.detail(
        "convention", "busbw = algbw x 2(n-1)/n (nccl-tests, doc/PERFORMANCE.md); algbw = size / time"
    )
    from smoke_tests.multi_gpu.charts import all_reduce_chart

    title = f"all-reduce over {result['devices']} devices" + (" (simulated)" if found[0].simulated else "")
    started = time.perf_counter()
    check.plot(all_reduce_chart(rows, floor, title, check.out_dir / "all_reduce.png"))
    check.time("plots", time.perf_counter() - started)
    if problems:
        pytest.fail("; ".join(problems))


def test_data_parallel_training(check: CheckRecord, multi_gpu: Session) -> None:
    _, result = _measured(multi_gpu, check, "training")
    check.detail("tensorflow", TENSORFLOW)
    compared, recipe, scaling = result["first_steps"], result["recipe"], result["scaling"]
    n = result["devices"]
    problems = []
    for step, (one, many, diff) in enumerate(
        zip(compared["one_device"], compared["all_devices"], compared["relative_difference"], strict=True), 1
    ):
        if not diff <= compared["tolerance"]:
            problems.append(f"step {step}: loss {one:.6g} on one device, {many:.6g} on {n}: relative "
                            "difference "
                            f"{diff:.1e} > {compared['tolerance']:.0e}")  # fmt: skip
    check.figure("first_steps_max_relative_difference", max(compared["relative_difference"]), "")
    metrics = recipe["metrics"]
    check.figure("test_accuracy", metrics["test_accuracy"], "", better="higher")
    check.figure("scaling_efficiency", scaling["efficiency"], "", better="higher", devices=n)
    check.figure("speedup", scaling["speedup"], "x", devices=n)
    check.figure("images_per_s", scaling["images_per_s_all"], "images/s", better="higher")
    if not recipe["thresholds"]:
        problems.append(f"nothing judged: {recipe['threshold_source']} has no threshold")
    for metric, verdict in recipe["thresholds"].items():
        if not verdict["passed"]:
            problems.append(f"{metric} {verdict['actual']:.4g} (needs {verdict['op']} {verdict['value']}, "
                            f"{recipe['threshold_source']})")  # fmt: skip
    check.detail("first_steps", compared)
    check.detail("recipe", {k: v for k, v in recipe.items() if k != "history"})
    check.detail("scaling", {**scaling, "note": "images/s on all devices at the recipe's batch per device "
                             "against one device: reported, not judged"})  # fmt: skip
    check.detail("dataset", result["dataset"])
    for note in result["notes"]:
        check.warn(note)
    if problems:
        pytest.fail("; ".join(problems))
