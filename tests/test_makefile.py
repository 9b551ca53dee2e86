"""The Makefile passes every value it is given as one word: `make smoke-test DATA='/tmp/a b'` works, and
`DATA='/x || touch /tmp/owned'` runs nothing. They once went into the recipe unquoted."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, require_tool

# (A `$(...)` is make's own syntax on make's command line, expanded by make before any shell sees it.)
EVIL = ["/tmp/a b", "/x || touch {owned}", "it's; touch {owned}", "`touch {owned}`", 'a\\\'b "c"']


def fake_run_venv(where: Path) -> Path:
    """A RUN_VENV whose python writes the arguments it was given to args.json (and is up to date for make)."""
    venv = where / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec {shlex.quote(os.path.realpath("/usr/bin/python3"))} -c '
                      '\'import json, sys; json.dump(sys.argv[2:], open(sys.argv[1], "w"))\' '
                      f'{shlex.quote(str(where / "args.json"))} "$@"\n')  # fmt: skip
    python.chmod(0o755)
    (venv / ".synced-jax").touch()  # the stamp of EXTRAS=jax, newer than what it depends on: no sync
    return venv


@pytest.mark.parametrize("value", EVIL, ids=["space", "or-list", "quote", "backquote", "backslash"])
def test_make_smoke_test_hands_data_and_baseline_over_as_one_argument(tmp_path: Path, value: str) -> None:
    require_tool("make")
    owned = tmp_path / "owned"
    value = value.format(owned=owned)
    venv = fake_run_venv(tmp_path)
    proc = subprocess.run(
        ["make", "--no-print-directory", "smoke-test", f"RUN_VENV={venv}", "EXTRAS=jax", "UV=/bin/true",
         f"DATA={value}", f"BASELINE={value}.json", "LEVEL=quick"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    args = json.loads((tmp_path / "args.json").read_text())
    assert args == ["-m", "smoke_tests", "--level", "quick", "--baseline", f"{value}.json", "--data", value]
    assert not owned.exists(), "a value ran as a command"


@pytest.mark.parametrize(
    ("target", "variables", "expected"),
    [("provision", {"HOSTS": "h1,it's h2"}, ["-i", "h1,it's h2,"]),
     ("provision", {"HOSTS": "h1", "WORKSTATION_USER": "a b"}, ["-e", "workstation_user=a b"]),
     ("assets-install", {"ASSETS_BUNDLE": "my bundle; ls"}, ["--archive", "my bundle; ls.tar"]),
     ("jupyter", {"IMAGE": "img; ls", "JUPYTER_PORT": "8888 9"}, ["IMAGE=img; ls", "JUPYTER_PORT=8888 9"]),
     ("image", {"VARIANT": "cpu gpu", "BASE_IMAGE": "a'b"}, ["VARIANT=cpu gpu", "BASE_IMAGE=a'b"])],
    ids=["hosts", "workstation-user", "assets-bundle", "jupyter-image", "image-variant"],
)  # fmt: skip
def test_every_value_variable_is_one_shell_word(target: str, variables: dict, expected: list[str]) -> None:
    """What make would run (make -n), split as the shell splits it: each value is one word."""
    require_tool("make")
    assignments = [f"{k}={v}" for k, v in variables.items()]
    proc = subprocess.run(["make", "-n", "--no-print-directory", target, "UV=/bin/true", "BECOME_ASK=no",
                           *assignments], cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = proc.stdout.strip().splitlines()[-1]
    words = shlex.split(line)
    for i in range(len(expected)):
        assert expected[i] in words, (expected[i], words)
    if len(expected) == 2 and expected[0].startswith("-"):
        assert words[words.index(expected[0]) + 1] == expected[1], words
