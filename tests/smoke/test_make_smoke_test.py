"""`make smoke-test` for real on this machine's CPU, and its report: valid JSON, junit.xml, an HTML page
that headless Chromium renders with the checks table; then the baseline comparison and REQUIRE_GPU."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


# The CPU split into 4 JAX devices: the multi-GPU checks run on them (simulated) in the same make smoke-test.
SIMULATED_DEVICES = "--xla_force_host_platform_device_count=4"


@pytest.fixture(scope="module")
def smoke_run(fashion_mnist: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    env = {**os.environ, "XLA_FLAGS": SIMULATED_DEVICES}
    proc = subprocess.run(["make", "smoke-test"], cwd=ROOT, capture_output=True, text=True, timeout=1500,
                          check=False, env=env)  # fmt: skip
    found = re.search(r"smoke tests \(quick\) -> (\S+)", proc.stdout)
    assert found, f"no report folder announced:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc, Path(found.group(1))


@pytest.fixture(scope="module")
def report(smoke_run: tuple[subprocess.CompletedProcess[str], Path]) -> dict[str, Any]:
    return json.loads((smoke_run[1] / "report.json").read_text())


def test_make_smoke_test_passes_on_the_cpu(
    smoke_run: tuple[subprocess.CompletedProcess[str], Path], report: dict[str, Any]
) -> None:
    proc = smoke_run[0]
    assert proc.returncode == 0, proc.stdout[-4000:]
    summary = proc.stdout[proc.stdout.index("=" * 78) :]
    assert "SMOKE TEST PASSED" in summary and len(summary.splitlines()) <= 40
    if not report["gpu"]["available"]:
        assert "no NVIDIA GPU found" in summary
    assert report["verdict"] == "PASSED" and report["duration_s"] > 0
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    assert set(statuses.values()) <= {"passed", "skipped"}
    categories = {c["category"] for c in report["checks"]}
    assert categories == {"system", "framework", "workloads", "speed", "reproducibility", "multi_gpu"}
    # Only GPU checks may skip here, and each skip says why.
    for c in report["checks"]:
        if c["status"] == "skipped":
            assert "n/a" in c["message"] or "no NVIDIA GPU" in c["message"], c


def test_four_simulated_devices_pass_every_multi_gpu_check(report: dict[str, Any], smoke_run: tuple) -> None:
    """Every multi-device check runs on 4 simulated devices, says they are simulated, and passes; the report
    lists the devices and draws the P2P matrix."""
    checks = {c["name"]: c for c in report["checks"] if c["category"] == "multi_gpu"}
    assert sorted(checks) == [
        "all_reduce_busbw",
        "data_parallel_training",
        "p2p_bandwidth",
        "per_gpu_outliers",
    ]
    for check in checks.values():
        assert check["status"] == "passed", check
        assert any(w.startswith("simulated devices: 4 JAX devices") for w in check["warnings"]), check
    training = checks["data_parallel_training"]
    assert (
        training["details"]["first_steps"]["steps"] == 2
        and training["figures"]["test_accuracy"]["value"] > 0.7
    )
    assert training["figures"]["scaling_efficiency"]["value"] > 0
    sizes = checks["all_reduce_busbw"]["details"]["sizes"]
    assert sizes and all(row["wrong"] == [0, 0, 0, 0] and row["busbw_gbs"] > 0 for row in sizes)
    assert len(report["devices"]) == 4 and all(d["simulated"] and d["figures"] for d in report["devices"])
    assert "p2p_matrix.png" in " ".join(checks["p2p_bandwidth"]["plots"])
    page = (smoke_run[1] / "report.html").read_text()
    assert '<table id="devices">' in page and "the figures prove the method, not a speed" in page


def test_it_runs_in_the_runtime_environment_without_dev_tools(report: dict[str, Any]) -> None:
    """The main job's environment is the lock's runtime set (as the image and Ansible install it): the
    report's interpreter is the Makefile's RUN_VENV, and none of the dev tools are installed there."""
    run_venv = re.search(r"^RUN_VENV\s*:=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert run_venv, "no RUN_VENV in the Makefile"
    venv = ROOT / run_venv.group(1)
    assert Path(report["fingerprint"]["python_executable"]).parent == venv / "bin", report["fingerprint"]
    # The dev group's distributions (pyproject.toml), by their installed metadata: the editable install puts
    # the checkout on sys.path, where the ansible/ folder would pass for a module.
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    dev = [re.match(r"[A-Za-z0-9_.-]+", spec).group(0) for spec in groups["dev"]]
    probe = (
        "import importlib.metadata as m, re, sys; norm = lambda n: re.sub(r'[-_.]+', '-', n).lower(); "
        "have = {norm(d.metadata['Name']) for d in m.distributions()}; "
        "print(sorted(n for n in map(norm, sys.argv[1:]) if n in have))"
    )
    found = subprocess.run(
        [venv / "bin" / "python", "-c", probe, *dev], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert "ruff" in dev and "ansible" in dev, dev
    assert found == "[]", f"dev tools in the main job's environment: {found}"
    assert not (venv / "bin" / "ruff").exists()


def test_workloads_ran_with_their_results_and_plots(report: dict[str, Any], smoke_run: Any) -> None:
    out = smoke_run[1]
    workloads = [c for c in report["checks"] if c["category"] == "workloads"]
    assert {c["name"].split("[")[1].rstrip("]") for c in workloads} >= {"moons", "mnist"}
    for c in workloads:
        name = c["name"].split("[")[1].rstrip("]")
        result = json.loads((out / "workloads" / name / "result.json").read_text())
        assert result["status"] == "passed" and c["plots"], name
        assert all((out / p).is_file() for p in c["plots"])
    mnist = next(c for c in workloads if c["name"] == "workload[mnist]")
    assert mnist["details"]["dataset"]["name"] == "fashion_mnist"
    assert mnist["figures"]["test_accuracy"]["value"] >= 0.8


def test_where_the_time_went(report: dict[str, Any]) -> None:
    from smoke_tests import timing

    for c in report["checks"]:
        assert set(c["breakdown"]) == set(timing.CATEGORIES), c["name"]
        assert sum(c["breakdown"].values()) == pytest.approx(c["duration_s"] + c["setup_s"], abs=0.1)
    workloads = [c for c in report["checks"] if c["category"] == "workloads"]
    assert all(c["details"]["isolation"] == "worker" for c in workloads)
    for c in workloads:  # every workload reports its own phases
        assert all(c["breakdown"][k] > 0 for k in ("data", "compile", "steady", "evaluation", "plots")), c
    ladder = next(c for c in report["checks"] if c["name"] == "training_ladder")["breakdown"]
    assert ladder["compile"] > 0 and ladder["steady"] > 0
    assert report["time"]["start-up"] > 0  # the framework's import in the check process
    line = report["timeline"]
    assert 0 < line["checks_s"] <= line["total_s"] <= report["duration_s"] + 1


def test_speed_and_reproducibility_figures(report: dict[str, Any]) -> None:
    by_name = {c["name"]: c for c in report["checks"]}
    fp32 = by_name["matmul_tflops[fp32]"]["figures"]["fp32_tflops"]
    assert fp32["value"] > 0 and fp32["repeats"] >= 3 and "spread" in fp32
    ladder = by_name["training_ladder"]["details"]["ladder"]
    rungs = ["baseline", "input pipeline", "larger batch", "XLA", "mixed precision", "steps_per_execution"]
    on_gpu = by_name["training_ladder"]["details"]["device"] == "gpu"
    assert [r["rung"] for r in ladder] == rungs[: 6 if on_gpu else 3]  # quick on a CPU: the first three
    assert all(r["images_per_s"] > 0 for r in ladder)
    checksums = by_name["seeded_training_is_identical"]["details"]["checksums"]
    assert len(set(checksums)) == 1


def test_fingerprint_is_complete(report: dict[str, Any]) -> None:
    fp = report["fingerprint"]
    assert fp["lock_sha256"] == hashlib.sha256((ROOT / "uv.lock").read_bytes()).hexdigest()
    assert fp["git_revision"] and fp["packages"]["keras"] and fp["python"]
    from smoke_tests.settings import settings

    assert fp["smoke_settings"]["level"] == "quick"
    assert fp["smoke_settings"]["seed"] == settings()["framework"]["seed"]  # 0 is a seed too


def test_junit_xml_lists_every_check(report: dict[str, Any], smoke_run: Any) -> None:
    suite = ET.parse(smoke_run[1] / "junit.xml").getroot()
    assert len(suite.findall(".//testcase")) == len(report["checks"])


def test_html_renders_in_headless_chromium(report: dict[str, Any], smoke_run: Any, tmp_path: Path) -> None:
    chromium, driver = require_tool("chromium"), require_tool("chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        opts.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver), options=opts)
    try:
        browser.get((smoke_run[1] / "report.html").as_uri())
        rows = browser.find_elements(By.CSS_SELECTOR, "table#checks tbody tr")
        assert len(rows) == len(report["checks"])
        bars = browser.find_elements(By.CSS_SELECTOR, "table#breakdown tbody tr div.bar")
        assert len(bars) == len(report["checks"])  # one stacked bar per check
        drawn = [sum(s.size["width"] for s in b.find_elements(By.TAG_NAME, "span")) for b in bars]
        assert max(drawn) > 100  # the longest check's segments are drawn
        assert browser.find_element(By.ID, "verdict").text.startswith("PASSED")
        images = browser.find_elements(By.TAG_NAME, "img")
        assert images and all(
            browser.execute_script("return arguments[0].naturalWidth", i) > 0 for i in images
        )
    finally:
        browser.quit()


def test_baseline_regression_and_require_gpu(report: dict[str, Any], tmp_path: Path) -> None:
    # An earlier "machine" that was 10x faster at fp32 matmul and had another Keras; and REQUIRE_GPU=1.
    baseline = json.loads(json.dumps(report))
    for c in baseline["checks"]:
        if c["name"] == "matmul_tflops[fp32]":
            c["figures"]["fp32_tflops"]["value"] *= 10
    baseline["fingerprint"]["packages"]["keras"] = "0.0.1"
    (tmp_path / "baseline.json").write_text(json.dumps(baseline))
    proc = subprocess.run(
        [sys.executable, "-m", "smoke_tests", "-k", "gpu_found or environment_variables or matmul_tflops",
         "--baseline", str(tmp_path / "baseline.json"), "--out", str(tmp_path / "run")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "REQUIRE_GPU": "1"},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-3000:]
    rerun = json.loads((tmp_path / "run" / "report.json").read_text())
    comparison = rerun["comparison"]
    assert [r["figure"] for r in comparison["regressions"] if "figure" in r] == ["fp32_tflops"]
    assert "packages" in comparison["fingerprint_changed"]
    assert "regression(s)" in proc.stdout and "fingerprint changed: " in proc.stdout
    if not report["gpu"]["available"]:  # no GPU here: REQUIRE_GPU=1 makes that a failure
        nvml_check = next(c for c in rerun["checks"] if c["name"] == "gpu_found")
        assert nvml_check["status"] == "failed" and "REQUIRE_GPU=1" in nvml_check["message"]
        assert "no NVIDIA GPU found" in proc.stdout and "REQUIRE_GPU=1" in proc.stdout
