"""What the workload notebooks (notebooks/*.py) share in their first cells: the settings a run of them takes
from the environment, and the start of a session. Each notebook keeps what a reader edits (its seed, its
hyperparameters, its workload); the image ships this module with the package, next to the notebooks.

Environment: KW_QUICK=1 picks the quick settings (the notebook tests); KW_DATA a folder of MNIST-format IDX
files; KW_NOTEBOOK_OUT where the figures go (default runs/notebooks/).
"""

from __future__ import annotations

import os
from pathlib import Path


def quick() -> bool:
    return os.environ.get("KW_QUICK", "0") == "1"


def data_dir() -> Path | None:
    """`$KW_DATA` (e.g. /usr/share/datasets/fashion-mnist); None: the workload's own data chain."""
    return Path(os.environ["KW_DATA"]) if os.environ.get("KW_DATA") else None


def out_dir(notebook: str) -> Path:
    """The notebook's figure folder, made: `$KW_NOTEBOOK_OUT/<notebook>` (default runs/notebooks/)."""
    out = Path(os.environ.get("KW_NOTEBOOK_OUT", "runs/notebooks")) / notebook
    out.mkdir(parents=True, exist_ok=True)
    return out


def start(seed: int) -> str:
    """Choose the Keras backend (before keras is first imported: tensorflow or $KERAS_BACKEND) and seed every
    generator; the backend's name."""
    from workloads.training.backend import seed_everything, select_backend

    backend = select_backend(None)
    print("Keras backend:", backend)
    seed_everything(seed)
    return backend
