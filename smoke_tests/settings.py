"""The smoke test's settings: smoke_tests/settings.toml (levels, tolerances, the throttle rule, the seed), or
the file $SMOKE_SETTINGS names (a machine's own levels). Read by the runner and by its check process."""

from __future__ import annotations

import os
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_LEVEL = "quick"


@cache
def settings() -> dict[str, Any]:
    """smoke_tests/settings.toml, or the file $SMOKE_SETTINGS names (e.g. a machine's own levels)."""
    return tomllib.loads(Path(os.environ.get("SMOKE_SETTINGS") or HERE / "settings.toml").read_text())


def level_settings(level: str) -> dict[str, Any]:
    """One level's settings; ValueError naming the levels there are when `level` is not one of them."""
    levels = settings()["levels"]
    if level not in levels:
        raise ValueError(f"unknown level {level!r} (choose from {', '.join(levels)})")
    return levels[level]


def seed(override: int | None = None) -> int:
    """The seed of every check, the workloads' included: `override`, else the settings' [framework] seed."""
    return settings()["framework"]["seed"] if override is None else override
