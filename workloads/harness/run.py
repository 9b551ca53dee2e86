"""The harness around one workload run: output folder, result.json, thresholds, summary, exit code.

A workload's `run(ctx, ...)` fills `ctx.record` (a RunRecord) as it goes (dataset, hyperparameters, history),
so an interrupted or diverged run still writes a valid result.json with everything computed so far.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from gpu_doctor import exit_codes
from workloads import errors
from workloads.atomic import make_writable_folder
from workloads.harness import results, thresholds
from workloads.harness.fingerprint import environment_fingerprint
from workloads.locks import lock_folder

# result.json `dataset` of a run that stopped before it loaded any data.
NO_DATASET = {"name": "none", "source": "none", "fallback": False, "train_size": 0, "test_size": 0}


# A run's levels, as thresholds.toml and result.json name them (the CLI's --quick picks the first).
LEVELS = ("quick", "full")


def level(quick: bool) -> str:
    """The run's level as thresholds.toml and result.json name it."""
    return LEVELS[0] if quick else LEVELS[1]


def no_timings(total_s: float) -> dict:
    """result.json `timings` of a run without a training loop to time (only its total is known)."""
    return {
        "total_s": round(total_s, 3),
        "first_epoch_s": None,
        "steady_ms_per_step": None,
        "samples_per_s": None,
    }


@dataclass
class RunRecord:
    """What a workload records while it runs, for result.json; a field left unset gets its default there."""

    # The recipe's variant: picks its thresholds, and is result.json `stage` (mnist "stage5" or "ladder",
    # convnet-viz "canvas", "loaded" or "xception", transfer "self" or "inception_v3"); None: the workload
    # has one recipe (thresholds under "default", `stage` null).
    variant: str | None = None
    device: str = "CPU"
    dataset: dict | None = None
    hyperparameters: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    rules: dict | None = None  # None: the variant's thresholds from thresholds.toml
    timings: dict | None = None  # None: a run that timed no training (only its total)
    plots: list[str] = field(default_factory=list)


@dataclass
class RunContext:
    workload: str
    out_dir: Path
    backend: str
    seed: int = 42
    deterministic: bool = False
    level: str = "full"  # one of LEVELS, decided once by the CLI (or a resumed run's state) and passed down
    verbose: int = 2
    # Break what the run's check guards (see each workload's `main`): the run must then FAIL its thresholds.
    negative_control: bool = False
    allow_download: bool = True  # False: MNIST only from --data or the Keras cache, else the digits fallback
    # Filled by the workload while it runs.
    record: RunRecord = field(default_factory=RunRecord)
    started_at: str = field(default_factory=results.now)
    t0: float = field(default_factory=time.perf_counter)
    # Where the run's time went (result.json `timings.phases`): seconds per phase the workload named with
    # `phase()`, the rest (set-up, saving, result.json) under "other".
    phases: dict[str, float] = field(default_factory=dict)
    current_phase: tuple[str, float] | None = None

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"unknown level {self.level!r} (one of {', '.join(LEVELS)})")

    @property
    def quick(self) -> bool:
        """The recipes' hyperparameter choice: the quick level's smaller regime."""
        return self.level == LEVELS[0]

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def phase(self, name: str) -> None:
        """From now on the run's time counts toward `name` (one of PHASES), until the next call."""
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}: one of {', '.join(PHASES)}")
        now = time.perf_counter()
        label, since = self.current_phase or ("other", self.t0)
        self.phases[label] = self.phases.get(label, 0.0) + now - since
        self.current_phase = (name, now)

    def phase_seconds(self) -> dict[str, float]:
        """Seconds per phase so far; they add up to `elapsed()`."""
        self.phase("other")
        return {name: round(seconds, 3) for name, seconds in self.phases.items()}


# The phases a workload marks with `ctx.phase(...)` (smoke_tests/timing.py splits "train" into compile, the
# time until the first compiled training call returned, and steady training).
PHASES = ("data", "train", "evaluate", "plots", "other")


def default_out_dir(workload: str) -> Path:
    return Path("runs") / workload / datetime.now().strftime("%Y%m%d-%H%M%S")


# What a run leaves in its folder; a second run into the same folder would mix its files with these.
RUN_FILES = ("result.json", "checkpoint.keras", "checkpoint.next.keras", "state.json")


def prepare_out_dir(out_dir: Path, resuming: bool = False) -> Path:
    """Create the output folder, prove it is writable and lock it for this run, before any training starts.

    A folder that another run is using, or that holds an earlier run (unless this run resumes it), is refused.
    """
    out_dir = Path(out_dir)
    try:
        make_writable_folder(out_dir)
    except OSError as exc:
        error = errors.NoSpaceError if errors.is_no_space(exc) else errors.InputError
        raise error(f"--out {out_dir}: cannot write there ({exc.strerror or exc})") from None
    lock_folder(out_dir, "--out")
    earlier = [name for name in RUN_FILES if (out_dir / name).exists()]
    if earlier and not resuming:
        raise errors.InputError(
            f"--out {out_dir}: holds an earlier run ({', '.join(earlier)}): choose another folder"
            + (", or continue it with --resume" if "state.json" in earlier else "")
        )
    return out_dir


def build_result(ctx: RunContext, status: str | None = None, message: str = "") -> dict:
    """Assemble result.json from what the run recorded; judge thresholds unless `status` is forced."""
    record = ctx.record
    dataset = record.dataset or NO_DATASET
    rules = record.rules or thresholds.thresholds_for(
        ctx.workload.replace("-", "_"), record.variant or "default", ctx.level, dataset["name"]
    )
    verdicts = thresholds.check(record.metrics, rules)
    status = status or results.status_of(verdicts)
    fingerprint = environment_fingerprint(ctx.backend)
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
        "stage": record.variant,
        "status": status,
        "message": message,
        "backend": ctx.backend,
        "device": record.device,
        "level": ctx.level,
        "seed": ctx.seed,
        "deterministic": ctx.deterministic,
        "negative_control": ctx.negative_control,
        "dataset": dataset,
        "hyperparameters": record.hyperparameters,
        "metrics": record.metrics,
        "thresholds": verdicts,
        "history": record.history,
        "timings": {**(record.timings or no_timings(ctx.elapsed())), "phases": ctx.phase_seconds()},
        "plots": record.plots,
        "fingerprint": fingerprint,
        "started_at": ctx.started_at,
        "finished_at": results.now(),
    }


def interrupted_message(out_dir: Path) -> str:
    """Suggest --resume only where it works: a run that has written a checkpoint (only mnist does)."""
    from workloads.training.recorder import CHECKPOINT, NEXT_CHECKPOINT, STATE

    saved = (out_dir / CHECKPOINT).is_file() or (out_dir / NEXT_CHECKPOINT).is_file()
    if saved and (out_dir / STATE).is_file():
        return f"interrupted: history and the last checkpoint are kept; continue with --resume {out_dir}"
    return "interrupted: the history so far is kept (no checkpoint was written, so it cannot be resumed)"


_EXIT = {
    "passed": exit_codes.EXIT_OK,
    "unchecked": exit_codes.EXIT_OK,
    "failed": exit_codes.EXIT_THRESHOLD_FAILED,
    "diverged": exit_codes.EXIT_DIVERGED,
    "interrupted": exit_codes.EXIT_INTERRUPTED,
}


def execute(ctx: RunContext, body: Callable[[RunContext], None], summary: bool = True) -> int:
    """Run `body(ctx)`; write result.json (also after Ctrl-C, divergence or a full disk); print the summary;
    exit code. A full disk (a plot, a checkpoint or result.json that did not fit) ends with NoSpaceError
    after the summary is printed, so the run's figures reach the terminal whatever could not be written."""
    from workloads.harness.summary import print_summary

    full: OSError | None = None
    try:
        body(ctx)
        result = build_result(ctx)
    except errors.DivergedError as exc:
        result = build_result(ctx, "diverged", str(exc))
    except KeyboardInterrupt:
        result = build_result(ctx, "interrupted", interrupted_message(ctx.out_dir))
    except OSError as exc:
        if not errors.is_no_space(exc):
            raise
        full = exc  # the run stops there; what it computed so far is the result
        result = build_result(ctx, "failed", f"out of space, the run stopped: {errors.os_error_line(exc)}")
    except Exception as exc:  # the interrupt, wrapped by the C code it landed in
        if not errors.from_interrupt(exc):
            raise
        result = build_result(ctx, "interrupted", interrupted_message(ctx.out_dir))
    written = True
    try:
        results.write_result(ctx.out_dir, result)
    except OSError as exc:
        if not errors.is_no_space(exc):
            raise
        full, written = full or exc, False
    if summary or full is not None:
        with contextlib.suppress(OSError):  # a terminal that went away (SIGHUP) must not cost the exit code
            print_summary(result, os.fspath(ctx.out_dir), written=written)
    if full is not None:
        kept = "result.json written" if written else "result.json NOT written: only the figures above"
        why = errors.os_error_line(full)
        raise errors.NoSpaceError(f"out of space: {why} ({kept}); free space, run again")
    return _EXIT[result["status"]]
