"""keras-workstation workloads: small, real Keras 3 trainings with thresholds, timings and plots.

Run them with `python -m workloads <name> --help`. The package is laid out by concern:
- `recipes/`: the four workloads, one module each, their steps (data, model, train, evaluate, plot) as
  importable functions so the notebooks can call them cell by cell;
- `harness/`: one run of a workload: the typed run record, result.json and its schema, the thresholds;
- `data/`: the datasets, image folders, the offline assets and the Keras cache; it imports nothing of the
  harness, the training side or the recipes;
- `training/`: the framework side (backend and seeding, recorder, fused fit, pipelines, gradients);
- `service/`: the JupyterLab authentication rule shared by the image and Ansible.
`cli.py` adapts the command line to the recipes' plain parameters; `errors.py` holds the errors that end a
run in one line (their exit codes are every command's: gpu_doctor/exit_codes.py); `notebook.py` what the
notebooks' first cells share; `clock.py` the files' timestamps.
"""

__version__ = "0.1.0"
