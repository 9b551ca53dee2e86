"""The errors that end a run with one line, and the exit code each maps onto (the codes themselves are every
command's: gpu_doctor/exit_codes.py)."""

import errno

from gpu_doctor.exit_codes import EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_NO_SPACE


class WorkloadError(Exception):
    """An error that ends a run with a one-line message instead of a traceback."""

    exit_code = EXIT_BAD_INPUT


class InputError(WorkloadError):
    """Bad user input: a missing or malformed dataset, an unknown option value, an unwritable directory."""


class NoSpaceError(WorkloadError):
    """The disk or quota filled up: the run's figures went to the terminal, and what fitted was written."""

    exit_code = EXIT_NO_SPACE


class DivergedError(WorkloadError):
    """Training produced a NaN or infinite loss; what was written so far is kept."""

    exit_code = EXIT_DIVERGED


def is_no_space(exc: BaseException) -> bool:
    """A write failed because the file system (ENOSPC) or the user's quota (EDQUOT) is full."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def from_interrupt(exc: BaseException) -> bool:
    """An error that a Ctrl-C (or SIGTERM/SIGHUP) turned into another inside C code: the KeyboardInterrupt our
    handler raises while numpy or a framework runs comes back wrapped ("SystemError: <built-in function>
    returned a result with an exception set", the interrupt as its cause)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def os_error_line(exc: OSError) -> str:
    """An OSError on one line, with the file it concerns: 'No space left on device: runs/x/result.json'."""
    what = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    return f"{what}: {exc.filename}" if exc.filename else what


def os_error_exit(exc: OSError) -> int:
    """The exit code of a run ended by an OSError: its own for a full disk, else bad input (a path)."""
    return EXIT_NO_SPACE if is_no_space(exc) else EXIT_BAD_INPUT
