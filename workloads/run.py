"""The harness around one workload run: output folder, result.json, thresholds, summary, exit code.

A workload's `run(ctx)` fills `ctx.partial` as it goes (dataset, hyperparameters, history), so an interrupted
or diverged run still writes a valid result.json with everything computed so far.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from workloads import errors, results, thresholds
from workloads.fingerprint import environment_fingerprint


@dataclass
class RunContext:
    workload: str
    out_dir: Path
    backend: str
    seed: int = 42
    deterministic: bool = False
    quick: bool = False
    verbose: int = 2
    # Break what the run's check guards (see each workload's `main`): the run must then FAIL its thresholds.
    negative_control: bool = False
    allow_download: bool = True  # False: MNIST only from --data or the Keras cache, else the digits fallback
    # Filled by the workload while it runs: dataset, hyperparameters, history, metrics, timings, plots, stage.
    partial: dict = field(default_factory=dict)
    started_at: str = field(default_factory=results.now)
    t0: float = field(default_factory=time.perf_counter)

    @property
    def level(self) -> str:
        return "quick" if self.quick else "full"

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


def default_out_dir(workload: str) -> Path:
    return Path("runs") / workload / datetime.now().strftime("%Y%m%d-%H%M%S")


def prepare_out_dir(out_dir: Path) -> Path:
    """Create the output folder and prove it is writable before any training starts."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise errors.InputError(f"--out {out_dir}: cannot write there ({exc.strerror or exc})") from None
    return out_dir


def build_result(ctx: RunContext, status: str | None = None, message: str = "") -> dict:
    """Assemble result.json from what the run recorded; judge thresholds unless `status` is forced."""
    p = ctx.partial
    dataset = p.get("dataset") or {
        "name": "none",
        "source": "none",
        "fallback": False,
        "train_size": 0,
        "test_size": 0,
    }
    rules = p.get("rules") or thresholds.thresholds_for(
        ctx.workload.replace("-", "_"), p.get("variant", "default"), ctx.level, dataset["name"]
    )
    verdicts = thresholds.check(p.get("metrics", {}), rules)
    status = status or results.status_of(verdicts)
    if not message:
        failed = [k for k, v in verdicts.items() if not v["passed"]]
        message = {
            "passed": "all thresholds hold",
            "failed": f"threshold not met: {', '.join(failed)}",
            "unchecked": f"no thresholds for dataset {dataset['name']!r} at level {ctx.level}: reported only",
        }[status]
    return {
        "schema_version": results.SCHEMA_VERSION,
        "workload": ctx.workload,
        "stage": p.get("stage"),
        "status": status,
        "message": message,
        "backend": ctx.backend,
        "device": p.get("device", "CPU"),
        "level": ctx.level,
        "seed": ctx.seed,
        "deterministic": ctx.deterministic,
        "dataset": dataset,
        "hyperparameters": p.get("hyperparameters", {}),
        "metrics": p.get("metrics", {}),
        "thresholds": verdicts,
        "history": p.get("history", {}),
        "timings": p.get("timings")
        or {
            "total_s": round(ctx.elapsed(), 3),
            "first_epoch_s": None,
            "steady_ms_per_step": None,
            "samples_per_s": None,
        },
        "plots": p.get("plots", []),
        "fingerprint": environment_fingerprint(ctx.backend),
        "started_at": ctx.started_at,
        "finished_at": results.now(),
    }


_EXIT = {
    "passed": errors.EXIT_OK,
    "unchecked": errors.EXIT_OK,
    "failed": errors.EXIT_THRESHOLD_FAILED,
    "diverged": errors.EXIT_DIVERGED,
    "interrupted": errors.EXIT_INTERRUPTED,
}


def execute(ctx: RunContext, body: Callable[[RunContext], None], summary: bool = True) -> int:
    """Run `body(ctx)`; write result.json (also after Ctrl-C or divergence); print the summary; exit code."""
    from workloads.summary import print_summary

    try:
        body(ctx)
        result = build_result(ctx)
    except errors.DivergedError as exc:
        result = build_result(ctx, "diverged", str(exc))
    except KeyboardInterrupt:
        result = build_result(
            ctx,
            "interrupted",
            f"interrupted: history and the last checkpoint are kept; continue with --resume {ctx.out_dir}",
        )
    results.write_result(ctx.out_dir, result)
    if summary:
        print_summary(result, os.fspath(ctx.out_dir))
    return _EXIT[result["status"]]
