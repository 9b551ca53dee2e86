"""Exit codes and the errors that map onto them (one place, so the CLI, tests and smoke tests agree)."""

EXIT_OK = 0
EXIT_THRESHOLD_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130


class WorkloadError(Exception):
    """An error that ends a run with a one-line message instead of a traceback."""

    exit_code = EXIT_BAD_INPUT


class InputError(WorkloadError):
    """Bad user input: a missing or malformed dataset, an unknown option value, an unwritable directory."""


class DivergedError(WorkloadError):
    """Training produced a NaN or infinite loss; what was written so far is kept."""

    exit_code = EXIT_DIVERGED
