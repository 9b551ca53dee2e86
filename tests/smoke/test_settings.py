"""SMOKE_SETTINGS, a machine's own settings file, checked against the shipped one before anything runs:
missing, a FIFO, /dev/zero, wrong types, a negative time-out, a missing or unknown key are one line and
exit 2. They once gave tracebacks mid-run, ate memory (/dev/zero) or hung (a FIFO)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smoke_tests import settings as smoke_settings
from tests.conftest import REPO

SHIPPED = tomllib.loads((REPO / "smoke_tests" / "settings.toml").read_text())


def settings_case(tmp_path: Path, case: str) -> str:
    if case == "missing":
        return str(tmp_path / "nope.toml")
    if case == "fifo":
        os.mkfifo(tmp_path / "settings.toml")
        return str(tmp_path / "settings.toml")
    if case == "dev-zero":
        return "/dev/zero"
    text = (REPO / "smoke_tests" / "settings.toml").read_text()
    edits = {
        "negative-timeout": ("check_timeout_s = 300", "check_timeout_s = -5"),
        "zero-suite-timeout": ("suite_timeout_s = 1200", "suite_timeout_s = 0"),
        "text-for-a-number": ("repeats = 3", 'repeats = "three"'),
        "number-for-a-list": ('workload_args = ["--quick"]', "workload_args = 3"),
        "missing-key": ("baseline_tolerance = 0.10\n", ""),
        "unknown-key": ("repeats = 3", "repeats = 3\nrepeat = 4"),
        "not-toml": ("[report]", "[report"),
    }
    old, new = edits[case]
    assert old in text, old
    (tmp_path / "settings.toml").write_text(text.replace(old, new, 1))
    return str(tmp_path / "settings.toml")


@pytest.mark.parametrize(
    ("case", "words"),
    [("missing", "cannot read it (No such file"), ("fifo", "a FIFO, not a regular file"),
     ("dev-zero", "a character device"), ("negative-timeout", "check_timeout_s must be positive, not -5"),
     ("zero-suite-timeout", "suite_timeout_s must be positive"),
     ("text-for-a-number", "must be a whole number"),
     ("number-for-a-list", "must be a list"), ("missing-key", "report lacks baseline_tolerance"),
     ("unknown-key", "unknown setting(s) repeat"), ("not-toml", "not valid TOML")],
)  # fmt: skip
def test_a_bad_settings_file_is_one_line_before_anything_runs(tmp_path: Path, case: str, words: str) -> None:
    env = {**os.environ, "SMOKE_SETTINGS": settings_case(tmp_path, case)}
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "smoke_tests", "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"SMOKE_SETTINGS={env['SMOKE_SETTINGS']}" in proc.stderr and words in proc.stderr, proc.stderr
    assert not out.exists(), "nothing ran"


def leaves(table: dict, prefix: tuple = ()) -> list[tuple]:
    found = []
    for key, value in table.items():
        if isinstance(value, dict):
            found += leaves(value, (*prefix, key))
        else:
            found.append((*prefix, key))
    return found


VALUES = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats()
    | st.text(max_size=6)
    | st.lists(st.integers(-5, 5) | st.text(max_size=4), max_size=3)
)


@given(st.sampled_from(leaves(SHIPPED)), VALUES)
def test_any_one_changed_setting_is_refused_in_one_line_or_still_sane(key: tuple, value: Any) -> None:
    own = copy.deepcopy(SHIPPED)
    table = own
    for part in key[:-1]:
        table = table[part]
    if value is None:
        del table[key[-1]]
    else:
        table[key[-1]] = value
    try:
        smoke_settings._check(own, SHIPPED, "SMOKE_SETTINGS=x")
    except smoke_settings.SettingsError as err:
        assert "\n" not in str(err) and str(err).startswith("SMOKE_SETTINGS=x: ")
        return
    shipped = SHIPPED
    for part in key:
        shipped = shipped[part]
    assert type(value) is type(shipped) or (isinstance(shipped, float) and type(value) is int)
    if isinstance(shipped, int | float) and not isinstance(shipped, bool):
        assert value > 0 if shipped > 0 else value >= 0
