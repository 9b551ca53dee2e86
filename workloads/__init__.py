"""keras-workstation workloads: small, real Keras 3 trainings with thresholds, timings and plots.

Run them with `python -m workloads <name> --help`. Each workload module keeps its steps (data, model, train,
evaluate, plot) as importable functions so the notebooks can call them cell by cell.
"""

__version__ = "0.1.0"
