"""The smoke test's settings: smoke_tests/settings.toml (levels, tolerances, the throttle rule, the seed), or
the file $SMOKE_SETTINGS names (a machine's own levels). Read by the runner and by its check process.

A file of one's own is checked against the shipped one, which is its schema: the same sections and keys
(each level with every key of the shipped levels, a new level allowed, the OPTIONAL sections left out if
need be), each value of the shipped value's type, and every number that is positive in the shipped file
positive in it too (a time-out of 0 or -5 s is refused), so that a mistake is one line before anything runs,
never a traceback or a hang mid-run. It is read without blocking and up to a size cap: a FIFO or /dev/zero
named there is refused at once.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gpu_doctor.safe_read import read_bytes

HERE = Path(__file__).resolve().parent
SHIPPED = HERE / "settings.toml"
DEFAULT_LEVEL = "quick"
MAX_SETTINGS_BYTES = 1 << 20  # a settings file is a few kilobytes
# Sections a level of one's own may leave out (checked like the shipped ones when present): only the
# multi-GPU checks read [levels.NAME.multi_gpu], and only on a machine with more than one device.
OPTIONAL = ("multi_gpu",)
READ_TIMEOUT_S = 5.0


class SettingsError(ValueError):
    """The settings file is missing, unreadable or malformed: one line, exit 2."""


@cache
def settings() -> dict[str, Any]:
    """smoke_tests/settings.toml, or the file $SMOKE_SETTINGS names (e.g. a machine's own levels), checked."""
    shipped = _load(SHIPPED, "smoke_tests/settings.toml")
    chosen = os.environ.get("SMOKE_SETTINGS")
    if not chosen:
        return shipped
    own = _load(Path(chosen), f"SMOKE_SETTINGS={chosen}")
    _check(own, shipped, f"SMOKE_SETTINGS={chosen}")
    return own


def _load(path: Path, what: str) -> dict[str, Any]:
    try:
        raw = read_bytes(path, max_bytes=MAX_SETTINGS_BYTES, timeout_s=READ_TIMEOUT_S)
    except OSError as err:
        raise SettingsError(f"{what}: cannot read it ({err.strerror or err})") from None
    try:
        return tomllib.loads(raw.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise SettingsError(f"{what}: not valid TOML ({' '.join(str(err).split())[:200]})") from None


def _check(own: dict[str, Any], shipped: dict[str, Any], what: str) -> None:
    """`own` has every key of `shipped` with a value of its kind (each level like the shipped levels)."""
    levels = own.get("levels")
    if not isinstance(levels, dict) or not levels:
        raise SettingsError(f"{what}: no [levels.NAME] table")
    like = shipped["levels"][DEFAULT_LEVEL]
    template = {**shipped, "levels": {
        name: {k: v for k, v in like.items() if k not in OPTIONAL or (isinstance(level, dict) and k in level)}
        for name, level in levels.items()
    }}  # fmt: skip
    _check_value(own, template, what, "")


def _check_value(value: Any, expected: Any, what: str, key: str) -> None:
    where = f"{what}: {key or 'the file'}"
    if isinstance(expected, dict):
        if not isinstance(value, dict):
            raise SettingsError(f"{where} must be a table")
        missing = [k for k in expected if k not in value]
        unknown = [k for k in value if k not in expected]
        if missing:
            raise SettingsError(f"{where} lacks {', '.join(missing)} (see smoke_tests/settings.toml)")
        if unknown:
            raise SettingsError(f"{where} has unknown setting(s) {', '.join(map(str, unknown))[:200]}")
        for k in expected:
            _check_value(value[k], expected[k], what, f"{key}.{k}" if key else k)
    elif isinstance(expected, list):
        if not isinstance(value, list):
            raise SettingsError(f"{where} must be a list, not {value!r:.60}")
        for i, item in enumerate(value):
            if expected:
                _check_value(item, expected[0], what, f"{key}[{i}]")
    elif isinstance(expected, bool | str):
        if type(value) is not type(expected):
            raise SettingsError(f"{where} must be {type(expected).__name__}, not {value!r:.60}")
    elif isinstance(expected, int | float):
        number = type(value) is int or (isinstance(expected, float) and type(value) is float)
        if not number or not math.isfinite(value):
            kind = "a whole number" if isinstance(expected, int) else "a number"
            raise SettingsError(f"{where} must be {kind}, not {value!r:.60}")
        if value < 0 or (expected > 0 and value <= 0):
            least = "positive" if expected > 0 else "at least 0"
            raise SettingsError(f"{where} must be {least}, not {value}")


@dataclass(frozen=True)
class Level:
    """A smoke level, resolved once (the runner from --level, its check process from --smoke-level) and
    passed down: its name and its settings ([levels.NAME], read-only)."""

    name: str
    settings: Mapping[str, Any]


def level_names() -> list[str]:
    """The levels of the settings file (the shipped one or $SMOKE_SETTINGS); SettingsError when it is bad."""
    return list(settings()["levels"])


def resolve_level(name: str) -> Level:
    """The level called `name`; ValueError naming the levels there are when it is not one of them."""
    levels = settings()["levels"]
    if name not in levels:
        raise ValueError(f"unknown level {name!r} (choose from {', '.join(levels)})")
    return Level(name, MappingProxyType(levels[name]))


def level_settings(level: str) -> Mapping[str, Any]:
    """One level's settings, for the tools that take a level by name (fleet, the multi-GPU child)."""
    return resolve_level(level).settings


def seed(override: int | None = None) -> int:
    """The seed of every check, the workloads' included: `override`, else the settings' [framework] seed."""
    return settings()["framework"]["seed"] if override is None else override
