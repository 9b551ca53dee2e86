"""`python -m smoke_tests` on bad input: a clear one-line error and exit 2, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smoke_tests import baseline, runner

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "smoke_tests", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    ("make_args", "words"),
    [
        (lambda tmp: ["--level", "medium"], "argument --level: invalid choice: 'medium'"),
        (lambda tmp: ["--baseline", str(tmp / "missing.json")], "cannot read it"),
        (lambda tmp: ["--baseline", str(tmp / "bad.json")], "not valid JSON"),
        (lambda tmp: ["--baseline", str(tmp / "other.json")], "not a smoke-test report.json"),
        (lambda tmp: ["--data", str(tmp / "nowhere")], "no such folder"),
        (lambda tmp: ["--out", "/proc/forbidden"], "cannot write there"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, make_args: Any, words: str) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"some": "thing"}')
    proc = _run(*make_args(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and words in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "checks",
    [{"a": 1}, [1, 2], [{"status": "passed"}], [{"id": "x", "status": "passed", "figures": []}],
     [{"id": "system/environment_variables", "status": "passed",
       "figures": {"f": {"value": "fast", "better": "higher"}}}]],
    ids=["checks-object", "checks-of-numbers", "check-without-id", "figures-list", "figure-value-text"],
)  # fmt: skip
def test_a_baseline_of_the_wrong_shape_is_refused_before_the_suite_runs(tmp_path: Path, checks: Any) -> None:
    """It once crashed with a traceback after the whole suite had run, and the report was lost."""
    (tmp_path / "baseline.json").write_text(json.dumps({"checks": checks}))
    proc = _run("--baseline", str(tmp_path / "baseline.json"), "-k", "environment_variables",
                "--out", str(tmp_path / "run"))  # fmt: skip
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and "not a smoke-test report.json" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
IDS = st.sampled_from(["system/a", "speed/b", "workloads/c"])
BETTER = st.sampled_from(["higher", "lower"]) | JSON
FIGURE = st.fixed_dictionaries({}, optional={"value": JSON | st.floats(), "better": BETTER})
CHECK = st.fixed_dictionaries(
    {}, optional={"id": IDS | JSON, "status": st.sampled_from(["passed", "failed"]) | JSON,
                  "figures": st.dictionaries(st.text(max_size=5), FIGURE | JSON, max_size=2) | JSON},
)  # fmt: skip
BASELINE = st.fixed_dictionaries({"checks": st.lists(CHECK | JSON, max_size=4) | JSON},
                                 optional={"fingerprint": JSON, "created": JSON}) | JSON  # fmt: skip
NOW = {
    "checks": [
        {"id": "system/a", "status": "failed", "figures": {}},
        {
            "id": "speed/b",
            "status": "passed",
            "figures": {"x": {"value": 2.0, "better": "higher", "unit": "s"}},
        },
        {"id": "workloads/c", "status": "passed", "figures": {"x": {"value": 1.0, "better": "lower"}}},
    ],
    "fingerprint": {"packages": {"keras": "3"}},
}


@settings(max_examples=300)
@given(BASELINE)
def test_any_baseline_is_compared_or_refused_in_one_line(tmp_path_factory, given_json: Any) -> None:
    path = tmp_path_factory.mktemp("baseline") / "baseline.json"
    try:
        path.write_text(json.dumps(given_json))
    except ValueError:
        return
    try:
        data = baseline.load_baseline(path)
    except baseline.BaselineError as err:
        assert "\n" not in str(err)
        return
    comparison = baseline.compare(data, NOW, 0.1)
    assert set(comparison) >= {"regressions", "fingerprint_changed"}


def test_the_write_probe_never_writes_through_a_planted_link(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.write_text("keep me")
    out = tmp_path / "report"
    out.mkdir()
    (out / ".write-test").symlink_to(precious)
    runner._out_dir(out)
    assert precious.read_text() == "keep me"


def test_a_probe_that_raises_never_crashes_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    def lost(**_: Any) -> None:
        raise RuntimeError("GPU is lost")  # what a binding could raise mid-probe

    monkeypatch.setattr(runner, "diagnose", lost)
    found = runner.probe_gpu()
    assert found.gpu_found and found.first_broken is not None
    assert "GPU is lost" in found.first_broken.cause and not found.nvml["available"]
    assert "BROKEN" in runner._gpu_note(found)


def test_the_doctor_and_the_runner_import_no_framework() -> None:
    """`make doctor` stays fast where there is no GPU: neither it nor the runner's own modules (the worker's
    client, the report) import a framework; only the check process and the worker do."""
    code = (
        "import sys; from smoke_tests.runner import main; code = main(['doctor', '--json']); "
        "frameworks = ('tensorflow', 'jax', 'torch', 'keras'); "
        "print(sorted(m for m in frameworks if m in sys.modules)); sys.exit(code)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False, env={**os.environ, "KERAS_BACKEND": "tensorflow"})  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    *diagnosis, imported = proc.stdout.strip().splitlines()
    if json.loads("\n".join(diagnosis))["gpu_found"]:
        pytest.skip("a GPU is here: the doctor's framework layer imports the framework, as it should")
    assert imported == "[]", proc.stdout[-500:]


@pytest.mark.parametrize(
    ("variable", "value", "line"),
    [("SMOKE_SEED", "seven", "SMOKE_SEED='seven': not an integer"),
     ("SMOKE_ISOLATION", "threads", "SMOKE_ISOLATION='threads': not one of worker, subprocess")],
)  # fmt: skip
def test_a_bad_environment_setting_exits_2_with_one_line(tmp_path: Path, variable, value, line) -> None:
    """SMOKE_ISOLATION once passed argparse unchecked (a default is not a choice) and failed inside pytest."""
    env = {**os.environ, variable: value}
    proc = subprocess.run([sys.executable, "-m", "smoke_tests", "--out", str(tmp_path / "r")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr == f"smoke_tests: error: {line}\n", proc.stderr[-2000:]
    assert not (tmp_path / "r").exists()


def test_the_runner_hands_its_settings_to_the_checks_as_options(tmp_path: Path) -> None:
    """REQUIRE_GPU and SMOKE_SEED are read by the runner, which hands them on as --smoke-* options."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMOKE_")}
    env.update({"REQUIRE_GPU": "1", "SMOKE_SEED": "7"})
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "smoke_tests", "-k", "gpu_found", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    data = json.loads((out / "report.json").read_text())
    assert data["fingerprint"]["smoke_settings"]["seed"] == 7 and data["require_gpu"] is True
    (gpu_found,) = data["checks"]
    if not data["gpu"]["available"]:  # the check process saw --smoke-require-gpu: no GPU is a failure
        assert proc.returncode == 1 and gpu_found["status"] == "failed", proc.stdout[-2000:]
        assert "REQUIRE_GPU=1" in gpu_found["message"]


def test_a_report_folder_in_use_is_refused(tmp_path: Path) -> None:
    """Two smoke runs into one --out once merged their reports; the folder is locked, as the workloads' is."""
    from workloads.locks import lock_folder, unlock_folder

    out = tmp_path / "run"
    out.mkdir()
    lock_folder(out, "--out")  # another run holds it: this process
    try:
        proc = _run("-k", "gpu_found", "--out", str(out))
    finally:
        unlock_folder(out)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and "another process is using it" in proc.stderr, proc.stderr
    assert not (out / "report.json").exists()
