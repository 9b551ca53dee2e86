"""`make gpu-report` (`python -m benchmarks.gpu_report`): what this project can say about a GPU machine, in
one call of at most 8 minutes (the lent GPU machine's limit per call), into one folder named after the GPU:

    <out>/<gpu>/fingerprint.json     the machine: GPUs, driver, CPU, Python, packages, lock hash, git revision
    <out>/<gpu>/doctor.txt, .json    the layered GPU diagnosis, for each backend
    <out>/<gpu>/<backend>-<level>/   the smoke test (report.json, report.html, junit.xml, pytest.log, ...)
    <out>/<gpu>/summary.md, .json    what ran, verdicts, times and the headline figures, what did not fit

Backends: JAX (the GPU machines this project is lent have JAX with its CUDA plugin and no TensorFlow), and
TensorFlow where it is installed. Levels: quick, then full, as long as the budget lasts; a run cut by the
budget gets SIGTERM, so its report is written, marked interrupted (never a pass), and the summary says so.
It runs on a CPU too (CI), at the levels of $SMOKE_SETTINGS. The committed reports live in
benchmarks/results/<gpu>/ (README.md: the one-call command for the device machine).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from gpu_doctor.exit_codes import EXIT_BAD_INPUT, EXIT_OK, EXIT_THRESHOLD_FAILED

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 450  # under the 8-minute call, with room for starting Python and copying the files back
DOCTOR_LIMIT_S = 180  # the doctor imports the framework and runs its compute checks
LEVELS = ("quick", "full")
MIN_RUN_S = 60  # a smoke test needs at least this to say anything
STOP_GRACE_S = 45  # after SIGTERM, the runner stops its checks and writes the report
HEADLINES = ("tflops", "gb_s", "images_per_s", "samples_per_s", "accuracy")


def gpu_folder_name(fingerprint: dict[str, Any]) -> str:
    """nvidia-h200 (the first GPU's name, lower case, words joined by -), or cpu."""
    gpus = fingerprint.get("gpus")
    name = gpus[0].get("name") if isinstance(gpus, list) and gpus else None
    return re.sub(r"[^a-z0-9]+", "-", (name or "cpu").lower()).strip("-") or "cpu"


def installed_backends() -> list[str]:
    found = []
    for backend in ("jax", "tensorflow"):
        try:
            metadata.version(backend)
            found.append(backend)
        except metadata.PackageNotFoundError:
            pass
    return found


def _run(cmd: list[str], env: dict[str, str], limit_s: float, log: Path | None = None) -> dict[str, Any]:
    """A command with a time limit; at the limit SIGTERM, then SIGKILL after STOP_GRACE_S."""
    started = time.monotonic()
    out = log.open("w") if log else subprocess.PIPE
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    stopped = False
    try:
        stdout, _ = proc.communicate(timeout=max(limit_s, 1))
    except subprocess.TimeoutExpired:
        stopped = True
        proc.send_signal(signal.SIGTERM)
        try:
            stdout, _ = proc.communicate(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, _ = proc.communicate()
    finally:
        if log:
            out.close()
    seconds = round(time.monotonic() - started, 1)
    return {"code": proc.returncode, "seconds": seconds, "stopped_by_budget": stopped, "stdout": stdout or ""}


def _headlines(report: dict[str, Any]) -> dict[str, Any]:
    found = {}
    for check in report.get("checks", []):
        for name, figure in (check.get("figures") or {}).items():
            if any(h in name for h in HEADLINES) and isinstance(figure, dict):
                found[f"{check['name']}.{name}"] = figure.get("value")
    return found


def build_report(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    from workloads.harness.fingerprint import environment_fingerprint

    started = time.monotonic()
    deadline = started + args.budget_s
    fingerprint = environment_fingerprint()
    folder = args.out / gpu_folder_name(fingerprint)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fingerprint.json").write_text(json.dumps(fingerprint, indent=1, default=str))
    backends = args.backends or installed_backends()
    summary: dict[str, Any] = {"gpu": folder.name, "budget_s": args.budget_s, "backends": backends,
                               "doctor": {}, "runs": [], "not_run": []}  # fmt: skip
    base = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    for backend in backends:
        env = {**base, "KERAS_BACKEND": backend}
        doctor = _run(
            [sys.executable, "-m", "gpu_doctor"], env, min(DOCTOR_LIMIT_S, deadline - time.monotonic())
        )
        (folder / f"doctor-{backend}.txt").write_text(doctor["stdout"])
        as_json = _run([sys.executable, "-m", "gpu_doctor", "--json", "--no-compute"], env, 60)
        (folder / f"doctor-{backend}.json").write_text(as_json["stdout"])
        verdict = next(
            (ln.strip() for ln in doctor["stdout"].splitlines() if ln.strip().startswith("verdict:")), "?"
        )
        summary["doctor"][backend] = {
            "exit": doctor["code"],
            "seconds": doctor["seconds"],
            "verdict": verdict,
        }
        print(f"gpu-report: doctor ({backend}): {verdict} ({doctor['seconds']} s)", flush=True)
    for level in args.levels:
        for backend in backends:
            left = deadline - time.monotonic()
            name = f"{backend}-{level}"
            if left < MIN_RUN_S:
                summary["not_run"].append(f"{name}: {left:.0f} s of the budget left (needs {MIN_RUN_S} s)")
                continue
            print(f"gpu-report: smoke test {name} (up to {left:.0f} s) ...", flush=True)
            cmd = [sys.executable, "-m", "smoke_tests", "--level", level, "--out", str(folder / name)]
            env = {**base, "KERAS_BACKEND": backend}
            run = _run(cmd, env, left - STOP_GRACE_S, folder / f"{name}.log")
            report = {}
            with contextlib.suppress(OSError, ValueError):
                report = json.loads((folder / name / "report.json").read_text())
            entry = {"run": name, "exit": run["code"], "seconds": run["seconds"],
                     "stopped_by_budget": run["stopped_by_budget"],
                     "verdict": report.get("verdict", "NO REPORT"),
                     "backend": report.get("backend"), "counts": report.get("counts"),
                     "notes": report.get("notes"), "headlines": _headlines(report)}  # fmt: skip
            summary["runs"].append(entry)
            print(f"gpu-report: {name}: {entry['verdict']} ({run['seconds']} s)", flush=True)
    summary["seconds"] = round(time.monotonic() - started, 1)
    (folder / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    (folder / "summary.md").write_text(summary_markdown(summary, fingerprint))
    return folder, summary


def summary_markdown(summary: dict[str, Any], fingerprint: dict[str, Any]) -> str:
    gpus = fingerprint.get("gpus")
    described = (
        ", ".join(
            f"{g.get('name')} (cc {g.get('compute_capability')}, driver {g.get('driver')})" for g in gpus
        )
        if isinstance(gpus, list) and gpus
        else f"no GPU ({gpus})"
    )
    lines = [f"# GPU report: {summary['gpu']}", "", f"- machine: {described}",
             f"- Python {fingerprint.get('python')}, packages {fingerprint.get('packages')}",
             f"- git {fingerprint.get('git_revision')}, uv.lock {fingerprint.get('lock_sha256')}",
             f"- {summary['seconds']} s of a {summary['budget_s']} s budget", "",
             "| what | verdict | seconds |", "| --- | --- | --- |"]  # fmt: skip
    for backend, doctor in summary["doctor"].items():
        lines.append(f"| doctor ({backend}) | {doctor['verdict']} | {doctor['seconds']} |")
    for run in summary["runs"]:
        cut = " (stopped at the budget: not a pass)" if run["stopped_by_budget"] else ""
        lines.append(f"| smoke test {run['run']} | {run['verdict']}{cut} | {run['seconds']} |")
    lines += [f"| {item} | not run | |" for item in summary["not_run"]]
    for run in summary["runs"]:
        if run["headlines"]:
            lines += ["", f"## {run['run']}: headline figures", ""]
            lines += [f"- {k}: {v}" for k, v in run["headlines"].items()]
        lines += [f"- note: {n}" for n in run.get("notes") or []]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_report", description=__doc__.splitlines()[0])
    p.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results", help="default benchmarks/results"
    )
    p.add_argument(
        "--budget-s", type=float, default=BUDGET_S, help=f"the whole report's time (default {BUDGET_S})"
    )
    p.add_argument(
        "--levels", default=",".join(LEVELS), help="smoke-test levels, in order (default quick,full)"
    )
    p.add_argument("--backends", default="", help="default: jax and tensorflow, those installed")
    args = p.parse_args(argv)
    args.levels = [x for x in args.levels.split(",") if x]
    args.backends = [x for x in args.backends.split(",") if x]
    if not args.levels or args.budget_s <= 0:
        print(
            "gpu-report: error: --levels must name a level and --budget-s must be positive", file=sys.stderr
        )
        return EXIT_BAD_INPUT
    folder, summary = build_report(args)
    print(f"gpu-report: {folder} ({summary['seconds']} s)")
    passed = (
        summary["runs"] and all(r["verdict"] == "PASSED" for r in summary["runs"]) and not summary["not_run"]
    )
    return EXIT_OK if passed else EXIT_THRESHOLD_FAILED


if __name__ == "__main__":
    sys.exit(main())
