"""Where Keras keeps what it downloads: the cache the workloads read datasets and weights from."""

from __future__ import annotations

import os
from pathlib import Path


def keras_home() -> Path:
    """Keras's cache folder: `$KERAS_HOME`, else `~/.keras` (where datasets/ and models/ live)."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
