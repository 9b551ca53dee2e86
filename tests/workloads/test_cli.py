"""Bad input through the command line: a one-line error, a distinct exit code, never a traceback."""

from __future__ import annotations

import os

import pytest

from tests.conftest import run_workloads
from tests.workloads.test_data import make_idx_dir, write_idx
from workloads.errors import EXIT_BAD_INPUT


def assert_one_line_error(proc, *fragments: str) -> None:
    assert proc.returncode == EXIT_BAD_INPUT, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_unknown_backend(tmp_path):
    proc = run_workloads("moons", "--backend", "theano", "--out", str(tmp_path))
    assert_one_line_error(proc, "unknown backend 'theano'")


def test_unknown_stage(tmp_path):
    proc = run_workloads("mnist", "--stage", "7", "--out", str(tmp_path))
    assert_one_line_error(proc, "unknown stage 7")


def test_unknown_workload():
    proc = run_workloads("cifar")
    assert (
        proc.returncode == EXIT_BAD_INPUT
        and "invalid choice" in proc.stderr
        and "Traceback" not in proc.stderr
    )


def test_bad_number():
    proc = run_workloads("moons", "--epochs", "0")
    assert_one_line_error(proc, "--epochs must be at least 1")


@pytest.mark.skipif(
    os.geteuid() == 0, reason="as root a mode-0500 folder is writable; test_unwritable_output_dir covers root"
)
def test_unwritable_output_dir_as_user(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    proc = run_workloads("moons", "--out", str(locked / "run"))
    assert_one_line_error(proc, "cannot write there")


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    proc = run_workloads("moons", "--out", str(blocker / "run"))
    assert_one_line_error(proc, f"--out {blocker / 'run'}", "cannot write there")


def test_missing_data_dir(tmp_path):
    proc = run_workloads("mnist", "--quick", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "no such directory")


def test_empty_data_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = run_workloads("mnist", "--quick", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "directory is empty")


def test_truncated_idx_file(tmp_path):
    d = make_idx_dir(tmp_path / "d")
    write_idx(d / "t10k-images-idx3-ubyte", __import__("numpy").zeros((20, 28, 28)), cut=10)
    proc = run_workloads("mnist", "--quick", "--data", str(d), "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "t10k-images-idx3-ubyte.gz", "truncated")


def test_resume_without_checkpoint(tmp_path):
    proc = run_workloads("mnist", "--resume", str(tmp_path))
    assert_one_line_error(proc, "nothing to resume")
