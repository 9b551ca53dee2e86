"""Installed as the top-level module `keras_workstation_preload` with `keras_workstation_preload.pth`, which
Python's site module runs at every start of an environment made from the lock (pyproject.toml's
force-include). It costs one tiny import; the work happens only when `tensorflow` is first imported: then
gpu_doctor.loader.preload loads, by absolute path, the wheel libraries TensorFlow's own search path misses
(libcusolver.so.11 with TensorFlow 2.21), so a bare-metal user sets no LD_LIBRARY_PATH. It never fails an
import: the doctor's libraries layer reports what is still missing. KERAS_WORKSTATION_PRELOAD=0 turns it off.
"""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder


class _BeforeTensorFlow(MetaPathFinder):
    """Asked first for every import; acts once, on `tensorflow`, then leaves and lets the import go on."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow":
            sys.meta_path.remove(self)
            try:
                from gpu_doctor.loader import preload

                preload("tensorflow")
            except Exception:  # a broken hook must not break `import tensorflow`
                pass
        return None


if not any(isinstance(f, _BeforeTensorFlow) for f in sys.meta_path):
    sys.meta_path.insert(0, _BeforeTensorFlow())
