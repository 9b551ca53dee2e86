"""Bad input through the command line: a one-line error, a distinct exit code, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from gpu_doctor.exit_codes import EXIT_BAD_INPUT, EXIT_INTERRUPTED
from tests.conftest import REPO, run_workloads
from tests.terminal import hang_up_when
from tests.workloads.test_data import make_idx_dir, write_idx


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


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_seed_out_of_range(tmp_path, seed):
    proc = run_workloads("moons", "--seed", seed, "--out", str(tmp_path))
    assert_one_line_error(proc, "--seed must be from 0 to 4294967295")


def test_the_write_probe_never_writes_through_a_planted_link(tmp_path):
    from workloads.harness.run import prepare_out_dir

    precious = tmp_path / "precious"
    precious.write_text("keep me")
    out = tmp_path / "run"
    out.mkdir()
    (out / ".write-test").symlink_to(precious)
    prepare_out_dir(out)
    assert precious.read_text() == "keep me"


# --- Two runs, one folder -----------------------------------------------------------------------------------
def test_two_runs_cannot_share_an_output_folder(tmp_path):
    """A second run into a folder that a run is using is refused; so is a later run into a finished one."""
    out = tmp_path / "run"
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    first = subprocess.Popen(
        [sys.executable, "-m", "workloads", "moons", "--epochs", "30", "--out", str(out)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not out.is_dir():  # the folder is locked right after it is made, before Keras is imported
            assert first.poll() is None and time.monotonic() < deadline, "the first run never started"
            time.sleep(0.05)
        time.sleep(0.5)
        second = run_workloads("moons", "--epochs", "30", "--out", str(out))
        assert_one_line_error(second, f"--out {out.resolve()}", "another process is using it")
    finally:
        log, _ = first.communicate(timeout=300)
    assert first.returncode in (0, 1), log[-2000:]
    assert json.loads((out / "result.json").read_text())["status"] in ("passed", "failed")
    third = run_workloads("moons", "--out", str(out))
    assert_one_line_error(third, "holds an earlier run (result.json)")


# --- --resume of a damaged run ------------------------------------------------------------------------------
def _state(**changes) -> dict:
    from dataclasses import asdict

    from workloads.recipes.mnist import stage_config

    state = {"stage": 1, "quick": True, "data": None, "seed": 42, "epochs": 2,
             "config": asdict(stage_config(1)), "epochs_done": 1, "history": {"loss": [0.5]}}  # fmt: skip
    return {**state, **changes}


@pytest.mark.parametrize(
    ("state_text", "checkpoint", "words"),
    [
        ("{not json", b"PK", "state.json is unreadable"),
        (json.dumps(_state(epochs_done="1")), b"PK", "wrong epochs_done"),
        (json.dumps(_state(history={"loss": ["x"]})), b"PK", "wrong history"),
        (json.dumps(_state(config={"stage": 1, "batch_size": [1]})), b"PK", "config this program did not"),
        (json.dumps(_state(epochs_done=9)), b"PK", "9 of 2 epochs"),
        (None, b"this is not a zip file", "checkpoint.keras is not a loadable Keras model"),
    ],
    ids=["garbage-json", "wrong-type", "non-numeric-history", "foreign-config", "done-beyond-planned",
         "garbage-checkpoint"],
)  # fmt: skip
def test_resume_of_a_damaged_run_is_one_line(tmp_path, state_text, checkpoint, words):
    run = tmp_path / "run"
    run.mkdir()
    if state_text is None:  # a valid state, with IDX data so the run gets as far as loading the model
        state_text = json.dumps(_state(data=str(make_idx_dir(tmp_path / "data"))))
    (run / "state.json").write_text(state_text)
    (run / "checkpoint.keras").write_bytes(checkpoint)
    proc = run_workloads("mnist", "--resume", str(run))
    assert_one_line_error(proc, f"--resume {run}", words)


# --- Signals ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("delay", [0.5, 2.0, 4.0])
def test_ctrl_c_while_the_backend_is_imported_is_one_line(tmp_path, delay):
    """Ctrl-C at any moment of the start-up (the TensorFlow import takes seconds): exit 130, no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "workloads", "moons", "--out", str(tmp_path / "run")],
        cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, out[-2000:] + err[-2000:]
    assert "Traceback" not in err, err[-3000:]


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"]
)
def test_an_interrupted_moons_run_keeps_its_result_and_does_not_suggest_resume(tmp_path, sig):
    """moons has no checkpoint, so no --resume; SIGTERM (docker stop, systemctl stop) and SIGHUP (a closed
    terminal) act like Ctrl-C."""
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "workloads", "moons", "--epochs", "100000", "--out", str(out)],
        cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    for line in proc.stdout:
        if line.startswith("Epoch 3/"):
            break
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, rest[-2000:]
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "interrupted" and result["history"]["loss"], result["message"]
    assert "--resume" not in result["message"] and "cannot be resumed" in result["message"]


def test_one_training_image_is_refused_before_quick_trains(tmp_path):
    """One image made --quick train 30,000 epochs (about 30,000 samples), then crash; it is refused at the
    data boundary, before any training."""
    d = make_idx_dir(tmp_path / "d", n_train=1)
    proc = run_workloads("mnist", "--quick", "--data", str(d), "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "1 image(s); the workloads need at least 100 training images")


def test_a_closed_terminal_keeps_the_result(tmp_path):
    """An SSH session that drops: SIGHUP, and every later write to the terminal fails (EIO). The run ends
    like Ctrl-C with its result written, and the failed writes cost nothing (it once died with no result)."""
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "workloads", "moons", "--epochs", "100000", "--out", str(out)]
    code, shown = hang_up_when(argv, lambda shown: b"Epoch 3/" in shown, env={"TF_CPP_MIN_LOG_LEVEL": "3"})
    assert code == EXIT_INTERRUPTED, shown[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "interrupted" and result["history"]["loss"], result["message"]
