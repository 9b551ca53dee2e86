"""The exit codes every command of this project shares: `python -m gpu_doctor`, `python -m workloads`,
`python -m smoke_tests`, `python -m fleet`, the benchmarks and `gpu_doctor/rules.py`. One place, in the
lowest package, so that a script or a CI job reads a number the same way whichever command it ran. It imports
nothing: rules.py, run as a plain script, loads it by its path."""

EXIT_OK = 0  # every threshold, check or layer holds (the doctor: also "no NVIDIA GPU at all", said why)
EXIT_THRESHOLD_FAILED = 1  # a threshold, a check or a GPU layer failed
EXIT_BAD_INPUT = 2  # bad input (an option, a file, a folder), or the command could not run
EXIT_DIVERGED = 3  # a workload's training diverged (a NaN or infinite loss)
EXIT_NO_SPACE = 4  # the disk or the quota is full: what fitted is written, the figures are printed
EXIT_INTERRUPTED = 130  # a workload stopped by SIGINT, SIGTERM or SIGHUP (the smoke test: 128 + the signal)
