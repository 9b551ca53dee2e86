"""`python -m benchmarks` (`make bench`): reference tutorial code against our workloads, and the quick smoke
test the old way against the new, side by side.

Each side runs in a fresh interpreter, one after the other, in this one invocation; the report
(reports/bench/bench.json, bench.png and smoke.png) holds both times, both accuracies (verdicts) and their
ratio, with the machine's load average before each side (this machine is shared: judge figures taken idle).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np

from gpu_doctor.backends import active_backend
from workloads.atomic import write_json
from workloads.data import images as data
from workloads.harness.fingerprint import environment_fingerprint
from workloads.recipes import plots
from workloads.recipes.mnist import stage_config

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGETS = tomllib.loads((HERE / "targets.toml").read_text())


def _python(args: list[str], backend: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode not in ok:
        sys.exit(f"bench: {' '.join(args[:4])} failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
    return proc


def _ours(args: list[str], backend: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        _python(["-m", "workloads", *args, "--out", out], backend, ok=(0, 1))  # 1: judged, still timed
        result = json.loads((Path(out) / "result.json").read_text())
    fit_s = sum(result["history"]["epoch_seconds"])
    return {
        "fit_s": fit_s,
        "total_s": result["timings"]["total_s"],
        "test_accuracy": result["metrics"]["test_accuracy"],
        "samples": result["dataset"]["train_size"] * len(result["history"]["epoch_seconds"]),
    }


def _reference(module: str, args: list[str], backend: str) -> dict:
    proc = _python(["-m", f"benchmarks.{module}", *args], backend)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _compare(
    name: str, reference: dict, ours: dict, throughput: bool = False, ours_key: str = "fit_s"
) -> dict:
    """Speed-up as time ratio (the reference's fit against our `ours_key`), or (`throughput`) as the ratio
    of samples/s over the same images."""
    target = TARGETS[name]
    if throughput:
        ref_rate, our_rate = reference["samples"] / reference["fit_s"], ours["samples"] / ours["fit_s"]
        speedup = our_rate / ref_rate
        extra = {"reference_samples_per_s": round(ref_rate, 1), "ours_samples_per_s": round(our_rate, 1)}
    else:
        speedup = reference["fit_s"] / ours[ours_key]
        extra = {"ours_measure": ours_key, f"ours_{ours_key}": round(ours[ours_key], 3)}
    drop = reference["test_accuracy"] - ours["test_accuracy"]
    passed = speedup >= target["min_speedup"] and drop <= target["max_accuracy_drop"]
    return {
        "reference_fit_s": round(reference["fit_s"], 3),
        "ours_fit_s": round(ours["fit_s"], 3),
        **extra,
        "reference_accuracy": round(reference["test_accuracy"], 4),
        "ours_accuracy": round(ours["test_accuracy"], 4),
        "speedup": round(speedup, 2),
        "target": target,
        "passed": passed,
    }


def _load() -> list[float]:
    """The machine's load average (1, 5, 15 min): the figures beside it are only as good as it is low."""
    return [round(x, 2) for x in os.getloadavg()]


def bench_moons(backend: str) -> dict:
    """The seed's fit against our timings.total_s: data, model, compilation and training (end to end)."""
    loads = [_load()]
    reference = _reference("reference_moons", [], backend)
    loads.append(_load())
    ours = _ours(["moons"], backend)
    return {**_compare("moons", reference, ours, ours_key="total_s"), "load_before": loads}


def _smoke(isolation: str, out: Path, backend: str, data_dir: Path | None) -> dict:
    """One quick smoke test (`python -m smoke_tests`), timed from outside as a user waits for it."""
    load = _load()
    cmd = [sys.executable, "-m", "smoke_tests", "--isolation", isolation, "--out", str(out)]
    cmd += ["--data", str(data_dir)] if data_dir else []
    env = {**os.environ, "KERAS_BACKEND": backend}
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    try:
        report = json.loads((out / "report.json").read_text())
    except (OSError, ValueError):
        sys.exit(f"bench: the smoke test ({isolation}) wrote no report (exit {proc.returncode}): "
                 f"{proc.stderr.strip()[-400:]}")  # fmt: skip
    return {
        "wall_s": round(wall, 1),
        "exit": proc.returncode,
        "verdict": report["verdict"],
        "statuses": {c["id"]: c["status"] for c in report["checks"]},
        "time": report.get("time"),
        "timeline": report.get("timeline"),
        "breakdown": {c["name"]: c.get("breakdown") for c in report["checks"]},
        "load_before": load,
        "report": str(out / "report.json"),
    }


def bench_smoke(backend: str, data_dir: Path | None, out: Path) -> dict:
    """The quick smoke test with the workloads each in a fresh interpreter (old) and in the worker (new)."""
    old = _smoke("subprocess", out / "smoke-subprocess", backend, data_dir)
    new = _smoke("worker", out / "smoke-worker", backend, data_dir)
    target = TARGETS["smoke_test"]
    differ = sorted(k for k in old["statuses"].keys() | new["statuses"].keys()
                    if old["statuses"].get(k) != new["statuses"].get(k))  # fmt: skip
    return {
        "old": old,
        "new": new,
        "speedup": round(old["wall_s"] / new["wall_s"], 2),
        "statuses_differ": differ,
        "target": target,
        "passed": new["wall_s"] <= target["max_wall_s"] and not (target["same_statuses"] and differ),
    }


# The doctor on a staged healthy H100 (tests/gpu_doctor/staging.py: only the OS boundary is fake), every
# layer down to the compute probe in its child process: what `make doctor` costs where there is a GPU.
STAGED_DOCTOR = (
    "import sys, tempfile; from pathlib import Path; from gpu_doctor.cli import main; "
    "from tests.gpu_doctor.staging import Machine; "
    "sys.exit(main([], boundary=Machine.healthy_h100(Path(tempfile.mkdtemp())).boundary()))"
)


def _median_wall(cmd: list[str], runs: int) -> tuple[float, list[float], int]:
    seconds, code = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        code = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True).returncode
        seconds.append(time.perf_counter() - started)
    return sorted(seconds)[len(seconds) // 2], seconds, code


def bench_doctor(runs: int = 3) -> dict:
    """`make doctor` as a user runs it (this machine: no GPU), and the doctor on a staged healthy H100 (every
    layer, the framework's child process included): wall seconds, the median of a few runs each."""
    load = _load()
    median, seconds, code = _median_wall(["make", "-s", "doctor"], runs)
    staged, staged_runs, staged_code = _median_wall([sys.executable, "-c", STAGED_DOCTOR], runs)
    target = TARGETS["doctor"]
    return {
        "wall_s": round(median, 2),
        "runs_s": [round(s, 2) for s in seconds],
        "exit": code,
        "staged_h100_wall_s": round(staged, 2),
        "staged_h100_runs_s": [round(s, 2) for s in staged_runs],
        "staged_h100_exit": staged_code,
        "load_before": load,
        "target": target,
        "speedup": None,
        "passed": max(median, staged) <= target["max_wall_s"] and code in (0, 1) and staged_code == 0,
    }


def smoke_plot(smoke: dict, path: Path) -> str:
    """Old and new as two stacked bars: the time in the checks by category, and outside them."""
    from smoke_tests import timing

    fig, ax = plots.plt.subplots(figsize=(8, 2.6))
    for row, side in enumerate(("new", "old")):
        run = smoke[side]
        in_checks = run["time"] or {}
        parts = {**in_checks, "outside the checks": run["wall_s"] - sum(in_checks.values())}
        left = 0.0
        for name, seconds in parts.items():
            color = timing.CATEGORIES.get(name, ("", "#444444"))[1]
            ax.barh(row, seconds, left=left, color=color, label=name if row == 0 else None)
            left += seconds
        ax.text(left, row, f" {run['wall_s']:.0f} s", va="center")
    ax.set_yticks([0, 1], ["worker (new)", "subprocesses (old)"])
    ax.axvline(smoke["target"]["max_wall_s"], color="red", linestyle="--", lw=1)
    ax.set_xlabel("seconds (quick smoke test, wall; red: target)")
    ax.set_title(f"smoke test: {smoke['speedup']:.2f}x faster")
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.35))
    return plots.save(fig, path)


def bench_mnist(data_dir: Path | None, epochs: int, backend: str) -> dict:
    """Stage 5 on the --quick subset, the same images for both sides."""
    cfg = stage_config(5)
    full = data.load_mnist(data_dir, allow_download=False)
    ds = data.subset(full, cfg.quick_train, cfg.quick_test, seed=42)
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "subset.npz"
        np.savez(npz, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test)
        reference = _reference("reference_mnist", [str(npz), str(epochs)], backend)
    data_args = ["--data", str(data_dir)] if data_dir else []
    ours = _ours(["mnist", "--quick", "--stage", "5", "--epochs", str(epochs), *data_args], backend)
    return {
        "dataset": ds.name,
        "images": len(ds.x_train),
        "epochs": epochs,
        **_compare("mnist_stage5", reference, ours, throughput=True),
    }


def plot(report: dict, path: Path) -> str:
    names = [n for n, b in report["benchmarks"].items() if b.get("speedup") is not None]
    fig, ax = plots.plt.subplots(figsize=(6, 3.5))
    bars = ax.bar(names, [report["benchmarks"][n]["speedup"] for n in names], color="tab:green")
    ax.bar_label(bars, fmt="%.2fx")
    for n, bar in zip(names, bars, strict=True):
        if "min_speedup" not in report["benchmarks"][n]["target"]:
            continue
        ax.hlines(
            report["benchmarks"][n]["target"]["min_speedup"],
            bar.get_x(),
            bar.get_x() + bar.get_width(),
            colors="red",
            linestyles="--",
        )
    ax.set_ylabel("speed-up over the tutorial code")
    ax.set_title(f"make bench ({report['backend']}, red: target)")
    return plots.save(fig, path)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    default_data = data.FASHION_MNIST_DIR if data.FASHION_MNIST_DIR.is_dir() else None
    parser.add_argument("--data", type=Path, default=default_data, help="IDX folder for MNIST stage 5")
    parser.add_argument("--backend", default=active_backend())
    parser.add_argument("--mnist-epochs", type=int, default=2)
    parser.add_argument("--only", choices=("moons", "mnist", "smoke", "doctor"))
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "bench")
    args = parser.parse_args()

    benchmarks = {}
    if args.only in (None, "moons"):
        print("bench: moons, the seed's code then ours ...", flush=True)
        benchmarks["moons"] = bench_moons(args.backend)
    if args.only in (None, "mnist"):
        print(
            f"bench: MNIST stage 5 ({args.mnist_epochs} epochs), the codelab's code then ours ...", flush=True
        )
        benchmarks["mnist_stage5"] = bench_mnist(args.data, args.mnist_epochs, args.backend)
    if args.only in (None, "doctor"):
        print("bench: make doctor ...", flush=True)
        benchmarks["doctor"] = bench_doctor()
    if args.only in (None, "smoke"):
        print("bench: the quick smoke test, the old way (a subprocess per workload), then the new (worker)")
        benchmarks["smoke_test"] = bench_smoke(args.backend, args.data, args.out)
    report = {
        "backend": args.backend,
        "machine": platform.node(),
        "benchmarks": benchmarks,
        "fingerprint": environment_fingerprint(args.backend),
    }
    report["plots"] = [plot(report, args.out / "bench.png")]
    if "smoke_test" in benchmarks:
        report["plots"].append(smoke_plot(benchmarks["smoke_test"], args.out / "smoke.png"))
    write_json(args.out / "bench.json", report)
    for name, b in benchmarks.items():
        verdict = "PASS" if b["passed"] else "FAIL"
        if name == "doctor":
            print(f"{verdict} {name:14s} make doctor {b['wall_s']:.2f} s (median of {b['runs_s']}), on a "
                  f"staged healthy H100 {b['staged_h100_wall_s']:.2f} s (median of "
                  f"{b['staged_h100_runs_s']}); load {b['load_before'][0]}; "
                  f"target <= {b['target']['max_wall_s']:.0f} s")  # fmt: skip
            continue
        if name == "smoke_test":
            old, new = b["old"], b["new"]
            print(f"{verdict} {name:14s} old (subprocesses) {old['wall_s']:6.1f} s {old['verdict']} "
                  f"(load {old['load_before'][0]}) | new (worker) {new['wall_s']:6.1f} s {new['verdict']} "
                  f"(load {new['load_before'][0]}) | speed-up {b['speedup']:.2f}x "
                  f"(target <= {b['target']['max_wall_s']:.0f} s, same check statuses: "
                  f"{'yes' if not b['statuses_differ'] else ', '.join(b['statuses_differ'])})")  # fmt: skip
            continue
        measure = b.get("ours_measure", "fit_s").removesuffix("_s")
        print(
            f"{verdict} {name:14s} reference {b['reference_fit_s']:7.2f} s "
            f"acc {b['reference_accuracy']:.4f} | "
            f"ours {b.get('ours_' + measure + '_s', b['ours_fit_s']):7.2f} s ({measure}) "
            f"acc {b['ours_accuracy']:.4f} | speed-up {b['speedup']:.2f}x "
            f"(target >= {b['target']['min_speedup']}x)"
        )
    print(f"bench: report in {args.out / 'bench.json'}")
    return 0 if all(b["passed"] for b in benchmarks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
