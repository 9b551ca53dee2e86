"""`python -m benchmarks` (`make bench`): reference tutorial code against our workloads, side by side.

Each side runs in a fresh interpreter, one after the other, in this one invocation; the report
(reports/bench/bench.json and bench.png) holds both times, both accuracies and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np

from workloads import data, plots
from workloads.atomic import write_json
from workloads.fingerprint import environment_fingerprint
from workloads.mnist import stage_config

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
        "test_accuracy": result["metrics"]["test_accuracy"],
        "samples": result["dataset"]["train_size"] * len(result["history"]["epoch_seconds"]),
    }


def _reference(module: str, args: list[str], backend: str) -> dict:
    proc = _python(["-m", f"benchmarks.{module}", *args], backend)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _compare(name: str, reference: dict, ours: dict, throughput: bool = False) -> dict:
    """Speed-up as time ratio, or (`throughput`) as the ratio of samples/s over the same images."""
    target = TARGETS[name]
    if throughput:
        ref_rate, our_rate = reference["samples"] / reference["fit_s"], ours["samples"] / ours["fit_s"]
        speedup = our_rate / ref_rate
        extra = {"reference_samples_per_s": round(ref_rate, 1), "ours_samples_per_s": round(our_rate, 1)}
    else:
        speedup = reference["fit_s"] / ours["fit_s"]
        extra = {}
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


def bench_moons(backend: str) -> dict:
    return _compare("moons", _reference("reference_moons", [], backend), _ours(["moons"], backend))


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
    names = list(report["benchmarks"])
    fig, ax = plots.plt.subplots(figsize=(6, 3.5))
    bars = ax.bar(names, [report["benchmarks"][n]["speedup"] for n in names], color="tab:green")
    ax.bar_label(bars, fmt="%.2fx")
    for n, bar in zip(names, bars, strict=True):
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
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"))
    parser.add_argument("--mnist-epochs", type=int, default=2)
    parser.add_argument("--only", choices=("moons", "mnist"))
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
    report = {
        "backend": args.backend,
        "machine": platform.node(),
        "benchmarks": benchmarks,
        "fingerprint": environment_fingerprint(args.backend),
    }
    report["plots"] = [plot(report, args.out / "bench.png")]
    write_json(args.out / "bench.json", report)
    for name, b in benchmarks.items():
        verdict = "PASS" if b["passed"] else "FAIL"
        print(
            f"{verdict} {name:14s} reference {b['reference_fit_s']:7.2f} s "
            f"acc {b['reference_accuracy']:.4f} | "
            f"ours {b['ours_fit_s']:7.2f} s acc {b['ours_accuracy']:.4f} | speed-up {b['speedup']:.2f}x "
            f"(target >= {b['target']['min_speedup']}x)"
        )
    print(f"bench: report in {args.out / 'bench.json'}")
    return 0 if all(b["passed"] for b in benchmarks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
