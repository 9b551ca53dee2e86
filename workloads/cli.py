"""`python -m workloads <workload> [options]` (also the `workloads` console script).

Options are parsed before Keras is imported, so `--backend` can still choose the backend.
Exit codes (gpu_doctor/exit_codes.py): 0 thresholds hold, 1 a threshold failed, 2 bad input, 3 diverged,
4 out of space, 130 Ctrl-C, SIGTERM or SIGHUP.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from pathlib import Path

from gpu_doctor import exit_codes
from gpu_doctor.backends import BACKENDS
from workloads import errors

# The seed of a run without --seed: what a user gets, so `make calibrate` runs it beside seeds 0..N-1.
DEFAULT_SEED = 42


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("common options")
    g.add_argument("--quick", action="store_true", help="small, fast version (smoke tests, CI)")
    g.add_argument(
        "--epochs",
        type=int,
        help="passes over the training data, with or without --quick (transfer: of its first phase, "
        "pretraining for self, the new head for inception_v3); default: the recipe's for the level",
    )
    g.add_argument("--batch-size", type=int, help="override the recipe's batch size")
    g.add_argument("--learning-rate", type=float, help="override the recipe's learning rate")
    g.add_argument("--data", type=Path, help="folder with the dataset (MNIST-format IDX files, or images)")
    g.add_argument("--out", type=Path, help="output folder (default runs/<workload>/<timestamp>/)")
    g.add_argument(
        "--no-download",
        action="store_true",
        help="never download MNIST: use --data, the Keras cache, else the digits fallback (offline machines)",
    )
    g.add_argument(
        "--negative-control",
        action="store_true",
        help="break what the check guards (labels shuffled; transfer: the pretrained base re-initialized): "
        "the run must then FAIL its thresholds, which shows the check can fail",
    )
    g.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    g.add_argument("--deterministic", action="store_true", help="deterministic kernels (slower)")
    g.add_argument(
        "--backend", help=f"Keras backend: {', '.join(BACKENDS)} (default tensorflow or $KERAS_BACKEND)"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workloads",
        description="Keras workloads with thresholds, timings "
        "and plots; each run writes result.json and PNG figures.",
    )
    sub = parser.add_subparsers(dest="workload", metavar="WORKLOAD", required=True)
    common = _common_options()

    sub.add_parser("moons", parents=[common], help="the seed recipe: 10-10-1 network on two moons")

    mnist = sub.add_parser("mnist", parents=[common], help="the MNIST codelab ladder, stages 1-5")
    mnist.add_argument("--stage", type=int, default=5, help="codelab stage 1-5 (default 5)")
    mnist.add_argument("--ladder", action="store_true", help="run all five stages and plot them side by side")
    mnist.add_argument(
        "--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run in RUN_DIR"
    )
    _add_viz_transfer_assets(sub, common)
    return parser


def _add_viz_transfer_assets(sub, common: argparse.ArgumentParser) -> None:
    """Issue 3: convnet-viz, transfer and assets (options documented in workloads/recipes/README.md)."""
    viz = sub.add_parser("convnet-viz", parents=[common], help="activations, filter patterns, Grad-CAM")
    viz.add_argument("--model", help="a saved .keras model (MNIST stage 5), or 'xception' (with --image)")
    viz.add_argument("--image", type=Path, help="a photo for --model xception")
    viz.add_argument("--weights", help="Xception weights: imagenet (default), a local .h5 file, or none")
    viz.add_argument("--layer", help="layer for the filter patterns (default: the last Conv2D)")
    viz.add_argument("--cam-layer", help="layer for Grad-CAM (default: the last 4-D feature maps)")

    transfer = sub.add_parser("transfer", parents=[common], help="transfer learning: InceptionV3, or self")
    transfer.add_argument("--base", choices=("self", "inception_v3"), default="self", help="default self")
    transfer.add_argument("--weights", help="inception_v3: imagenet (default), a local no-top .h5, or none")
    transfer.add_argument("--labels-per-class", type=int, help="self: labels per new class (default 1)")
    transfer.add_argument(
        "--draws", type=int, help="self: few-label draws, each against scratch (default 6 quick, 10)"
    )

    assets = sub.add_parser("assets", help="offline assets: fetch, verify, pack, install (no Keras backend)")
    assets.add_argument("action", choices=("fetch", "verify", "pack", "install", "list"))
    assets.add_argument("--bundle", type=Path, default=Path("keras-assets"), help="bundle folder")
    assets.add_argument("--archive", type=Path, help="pack: the .tar to write; install: a .tar to install")
    assets.add_argument("--only", nargs="+", metavar="NAME", help="fetch only these assets")
    assets.add_argument("--keras-home", type=Path, help="install target (default $KERAS_HOME, else ~/.keras)")


def _check_positive(args: argparse.Namespace) -> None:
    for name in ("epochs", "batch_size"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise errors.InputError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if getattr(args, "learning_rate", None) is not None and not args.learning_rate > 0:
        raise errors.InputError(f"--learning-rate must be positive, got {args.learning_rate}")
    seed = getattr(args, "seed", None)
    if seed is not None and not 0 <= seed < 2**32:  # what NumPy and the backends' seeding accept
        raise errors.InputError(f"--seed must be from 0 to {2**32 - 1}, got {seed}")


def dispatch(args: argparse.Namespace) -> int:
    """Choose the backend, then import and run the chosen workload (Keras is first imported here)."""
    if args.workload == "assets":  # files only: no Keras backend needed
        from workloads.data import assets

        return assets.main(args)
    from workloads.harness.run import RunContext, default_out_dir, level, prepare_out_dir
    from workloads.training.backend import seed_everything, select_backend

    _check_positive(args)
    if args.workload == "mnist" and not 1 <= args.stage <= 5:
        raise errors.InputError(f"unknown stage {args.stage}: the ladder has stages 1-5")
    resume = getattr(args, "resume", None)
    out_dir = args.out or resume or default_out_dir(args.workload)
    out_dir = prepare_out_dir(out_dir, resuming=resume is not None and Path(out_dir) == Path(resume))
    backend = select_backend(args.backend)
    from workloads.training.recorder import (
        progress_verbosity,  # imports keras: only once the backend is chosen
    )

    # The workload's module is imported before the run's clock starts: imports are start-up, not the run.
    workload_main = _workload_main(args.workload)
    ctx = RunContext(
        workload=args.workload,
        out_dir=out_dir,
        backend=backend,
        seed=args.seed,
        deterministic=args.deterministic,
        level=level(args.quick),
        verbose=progress_verbosity(),
        negative_control=args.negative_control,
        allow_download=not args.no_download,
    )
    seed_everything(args.seed, args.deterministic)
    return workload_main(ctx, **workload_parameters(args))


def workload_parameters(args: argparse.Namespace) -> dict:
    """The command line as the workload's `main` takes it: plain keyword parameters."""
    params = {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate}
    if args.workload == "moons":  # generated data: no --data
        return params
    params["data_dir"] = args.data
    if args.workload == "mnist":
        return {**params, "stage": args.stage, "ladder": args.ladder, "resume": args.resume}
    if args.workload == "convnet-viz":
        viz = ("model", "image", "weights", "layer", "cam_layer")
        return {**params, **{name: getattr(args, name) for name in viz}}
    transfer = ("base", "weights", "labels_per_class", "draws")
    return {**params, **{name: getattr(args, name) for name in transfer}}


def _workload_main(name: str):
    """The workload's `main(ctx, **parameters)`, its module imported."""
    if name == "moons":
        from workloads.recipes import moons

        return moons.main
    if name == "mnist":
        from workloads.recipes import mnist

        return mnist.main
    if name == "convnet-viz":
        from workloads.recipes import convnet_viz

        return convnet_viz.main
    if name == "transfer":
        from workloads.recipes import transfer

        return transfer.main
    raise errors.InputError(f"unknown workload {name!r}")


_working = False
_interrupted = False


def _interrupt(signum, frame) -> None:
    """Ctrl-C, SIGTERM (docker stop, systemctl stop, kill) and SIGHUP (the terminal closed: an SSH session
    that dropped) the same way: interrupt the work, once. A
    second signal (the runner's SIGTERM after a Ctrl-C at the terminal) must not cut the writing of the
    interrupted run's result, and once it is done and reported a late signal changes nothing."""
    global _interrupted
    if _working and not _interrupted:
        _interrupted = True
        raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    global _working, _interrupted
    _working, _interrupted = True, False
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    parser, args = build_parser(), None
    try:
        args = parser.parse_args(argv)
        return dispatch(args)
    except errors.WorkloadError as exc:
        _tell(f"workloads {args.workload}: error: {' '.join(str(exc).split())}")  # one line
        return exc.exit_code
    except OSError as exc:  # a file the run could not read or write, outside a run's own handling: one line
        _tell(f"workloads {getattr(args, 'workload', '')}: error: {errors.os_error_line(exc)}")
        return errors.os_error_exit(exc)
    except KeyboardInterrupt:  # before a run started (importing the backend) or outside one (assets)
        _tell(f"workloads {getattr(args, 'workload', '')}: interrupted")  # no traceback
        return exit_codes.EXIT_INTERRUPTED
    except Exception as exc:  # the same interrupt, wrapped by the C code it landed in
        if not errors.from_interrupt(exc):
            raise
        _tell(f"workloads {getattr(args, 'workload', '')}: interrupted")
        return exit_codes.EXIT_INTERRUPTED
    finally:
        _working = False


def _tell(line: str) -> None:
    """One line to stderr, which may be a terminal that is gone (SIGHUP): the exit code still says it."""
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
