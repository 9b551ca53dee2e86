"""`python -m gpu_doctor` (also `python -m smoke_tests doctor`, `make doctor`, `docker run IMAGE doctor`).

Exit codes: 0 healthy, or no NVIDIA GPU at all (it says so and why); 1 a layer is broken (or no GPU with
--require-gpu / REQUIRE_GPU=1); 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import NoReturn

from gpu_doctor.backends import BACKENDS
from gpu_doctor.diagnose import BadBackend, diagnose
from gpu_doctor.exit_codes import EXIT_BAD_INPUT, EXIT_THRESHOLD_FAILED
from gpu_doctor.render import render
from gpu_doctor.system import Boundary


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 2 (the smoke runner's too)."""

    def error(self, message: str) -> NoReturn:  # one line and exit 2, not argparse's usage block
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def parse_args(argv: list[str] | None, prog: str) -> argparse.Namespace:
    p = OneLineParser(prog=prog, description="The layered GPU diagnosis: hardware to compute, in seconds.")
    p.add_argument(
        "--backend", choices=BACKENDS, help="framework to diagnose (default: $KERAS_BACKEND or tensorflow)"
    )
    p.add_argument(
        "--lower-only",
        action="store_true",
        help="do not import the framework: hardware .. CUDA libraries, memory, health, build rules",
    )
    p.add_argument(
        "--no-compute", action="store_true", help="import the framework but run no GPU computation"
    )
    p.add_argument("--json", action="store_true", help="print the diagnosis as JSON")
    p.add_argument(
        "--require-gpu",
        action="store_true",
        default=None,
        help="no NVIDIA GPU is a failure (also REQUIRE_GPU=1)",
    )
    return p.parse_args(argv)


def require_gpu_from_env() -> bool:
    return os.environ.get("REQUIRE_GPU", "") not in ("", "0", "false", "no")


def main(
    argv: list[str] | None = None, prog: str = "python -m gpu_doctor", boundary: Boundary | None = None
) -> int:
    """``boundary``: where to probe (default: this machine, or the GPU_DOCTOR_ROOT test hook's tree)."""
    args = parse_args(argv, prog)
    try:
        result = diagnose(
            boundary, args.backend, ask_framework=not args.lower_only, ask_compute=not args.no_compute
        )
    except BadBackend as err:
        print(f"{prog}: error: {err} (KERAS_BACKEND or --backend)", file=sys.stderr)
        return EXIT_BAD_INPUT
    require_gpu = bool(args.require_gpu) or require_gpu_from_env()
    if args.json:
        print(json.dumps(result.to_dict(), indent=1, default=str))
    else:
        print(render(result))
    if not result.gpu_found and require_gpu:
        print("no NVIDIA GPU found and REQUIRE_GPU=1 (--require-gpu): a failure", file=sys.stderr)
        return EXIT_THRESHOLD_FAILED
    return result.exit_code()
