"""Issue 25: the smoke level is resolved once into a frozen Level and passed down; the check process reads the
runner's GPU diagnosis (--smoke-diagnosis) instead of probing the GPU a second time."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gpu_doctor.model import BROKEN, OK, Diagnosis, Layer
from smoke_tests import runner, settings
from tests.conftest import REPO


def test_a_level_is_frozen_with_its_settings() -> None:
    level = settings.resolve_level("quick")
    assert (
        level.name == "quick"
        and level.settings["workloads"] == settings.settings()["levels"]["quick"]["workloads"]
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        level.name = "full"  # type: ignore[misc]
    with pytest.raises(TypeError):
        level.settings["repeats"] = 1  # type: ignore[index]
    with pytest.raises(ValueError, match="unknown level 'medium' \\(choose from quick, full\\)"):
        settings.resolve_level("medium")


def test_the_runner_resolves_the_level_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[str] = []

    def counting(name: str) -> settings.Level:
        calls.append(name)
        return settings.resolve_level(name)

    monkeypatch.setattr(runner, "resolve_level", counting)
    # A --data that is not there stops the runner after the level and before the report folder: exit 2.
    assert runner.main(["--level", "full", "--data", str(tmp_path / "nowhere")]) == 2
    assert calls == ["full"]


def test_a_bad_level_is_one_argparse_line_and_exit_2() -> None:
    cmd = [sys.executable, "-m", "smoke_tests", "--level", "medium"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "argument --level: invalid choice: 'medium'" in proc.stderr


def _planted() -> Diagnosis:
    """A diagnosis this machine's probe never gives: a GPU found, its kernel module broken by the test."""
    layers = [Layer("hardware", OK, summary="1 NVIDIA GPU (planted)")]
    layers.append(Layer("kernel_module").broken("planted by the test", "nothing to run"))
    return Diagnosis(
        layers=layers, gpu_found=True, nvml={"available": False, "reason": "planted", "gpus": []}
    )


def test_the_runner_hands_its_diagnosis_over_whole(tmp_path: Path) -> None:
    path = runner.hand_over_diagnosis(tmp_path, _planted())
    assert path == tmp_path / "diagnosis.json"
    assert Diagnosis.from_dict(json.loads(path.read_text())) == _planted()
    assert json.loads((tmp_path / "system.json").read_text()) == _planted().nvml


def test_the_checks_read_the_runners_diagnosis_and_do_not_probe(tmp_path: Path) -> None:
    """Negative control built in: probing this machine again would find no GPU and skip both checks."""
    handed = runner.hand_over_diagnosis(tmp_path, _planted())
    results = tmp_path / "results.jsonl"
    cmd = [sys.executable, "-m", "pytest", str(REPO / "smoke_tests/checks/test_1_system.py"),
           "-p", "no:cacheprovider", "--rootdir", str(REPO / "smoke_tests/checks"), "-o", "addopts=", "-q",
           "-k", "gpu_found or kernel_module", f"--smoke-out={tmp_path}", f"--smoke-results={results}",
           f"--smoke-diagnosis={handed}"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    records = {r["name"]: r for r in map(json.loads, results.read_text().splitlines())}
    assert records["gpu_found"]["status"] == "passed", proc.stdout[-2000:]
    layer = records["layer[kernel_module]"]
    assert layer["status"] == "failed" and "planted by the test" in layer["message"], layer
    assert _planted().layer("kernel_module").status == BROKEN
