"""Report generation, the baseline comparison and the verdict."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from smoke_tests import report


def _check(cid: str, status: str = "passed", **figures: Any) -> dict[str, Any]:
    return {
        "id": cid,
        "name": cid.split("::")[-1],
        "category": "speed",
        "status": status,
        "duration_s": 1.0,
        "message": "" if status == "passed" else f"{cid} went wrong",
        "figures": {k: {"value": v, "unit": "TFLOP/s", "better": "higher"} for k, v in figures.items()},
        "details": {},
        "plots": [],
        "telemetry": [],
        "warnings": [],
    }


def _report(checks: list[dict[str, Any]], fingerprint: dict[str, Any] | None = None) -> dict[str, Any]:
    data = {
        "schema_version": 1,
        "created": "2026-11-23T07:00:00+00:00",
        "level": "quick",
        "backend": "tensorflow",
        "require_gpu": False,
        "gpu": {"available": False, "reason": "NVML library not found", "gpus": []},
        "checks": checks,
        "counts": report.counts(checks),
        "fingerprint": fingerprint or {"packages": {"keras": "3.15.1"}, "gpus": [{"name": "A"}]},
        "charts": [],
        "duration_s": 12.0,
    }
    data["verdict"] = report.verdict(checks)
    return data


def test_verdict() -> None:
    assert report.verdict([_check("a"), _check("b", "skipped")]) == "PASSED"
    assert report.verdict([_check("a"), _check("b", "invalid")]) == "FAILED"  # throttled is not passed
    assert report.verdict([_check("a", "error")]) == "FAILED"
    assert report.verdict([]) == "NOT RUN"
    assert report.verdict([_check("a")], {"regressions": [{"check": "a"}]}) == "FAILED"


def test_baseline_flags_regressions_beyond_tolerance_and_fingerprint_changes() -> None:
    old = _report([_check("m", fp32=50.0), _check("h", h2d=20.0), _check("w", acc=0.9), _check("gone")])
    new = _report(
        [_check("m", fp32=44.0), _check("h", h2d=19.0), _check("w", "failed", acc=0.9), _check("new")],
        fingerprint={"packages": {"keras": "3.16.0"}, "gpus": [{"name": "A"}]},
    )
    comp = report.compare(old, new, tolerance=0.10)
    whats = {(r["check"], r.get("figure")): r["what"] for r in comp["regressions"]}
    assert ("m", "fp32") in whats and "-12.0%" in whats[("m", "fp32")]  # 12% slower > 10%
    assert ("h", "h2d") not in whats  # 5% slower is within tolerance
    assert whats[("w", None)] == "was passed, now failed"
    assert comp["figures_compared"] == 3
    assert comp["fingerprint_changed"] == ["packages"]
    assert comp["fingerprint_diff"]["packages"] == [
        {"field": "packages.keras", "baseline": "3.15.1", "now": "3.16.0"}
    ]
    assert report.verdict(new["checks"], comp) == "FAILED"


def test_lower_is_better_and_improvements() -> None:
    old = _report([_check("t")])
    old["checks"][0]["figures"] = {"step_ms": {"value": 10.0, "unit": "ms", "better": "lower"}}
    new = _report([_check("t")])
    new["checks"][0]["figures"] = {"step_ms": {"value": 12.0, "unit": "ms", "better": "lower"}}
    assert len(report.compare(old, new, 0.1)["regressions"]) == 1
    assert report.compare(new, old, 0.1)["improvements"][0]["change"] < 0
    assert report.compare(old, old, 0.1) == {**report.compare(old, old, 0.1), "regressions": []}


def test_html_has_the_table_banner_and_embedded_plots(tmp_path: Path) -> None:
    from smoke_tests.report import ladder_chart

    ladder = [
        {"rung": "baseline", "images_per_s": 100.0, "spread": 0.1, "gpu_cpu_ratio": None, "valid": True},
        {"rung": "XLA", "images_per_s": 180.0, "spread": 0.1, "gpu_cpu_ratio": None, "valid": False},
    ]
    chart = ladder_chart(ladder, tmp_path / "ladder.png", "cpu")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    checks = [_check("speed::ladder", fp32=1.5), _check("x", "failed")]
    checks[0]["plots"] = ["ladder.png"]
    data = _report(checks)
    page = report.render_html(data, tmp_path)
    assert '<table id="checks">' in page and page.count("<tr class=") == 2
    assert "data:image/png;base64," in page
    assert "No NVIDIA GPU found: NVML library not found" in page
    assert ">FAILED" in page and "x went wrong" in page
    json.dumps(data)  # the report is JSON-serialisable as it is


def test_summary_is_one_screen_and_says_no_gpu(tmp_path: Path) -> None:
    checks = [_check(f"c{i}", fp32=float(i)) for i in range(8)] + [_check("bad", "failed")]
    data = _report(checks)
    data["comparison"] = report.compare(_report(checks), data, 0.1)
    text = report.summary_text(data, tmp_path)
    lines = text.splitlines()
    assert len(lines) <= 40 and all(len(line) <= 160 for line in lines)
    assert "SMOKE TEST FAILED" in text and "no NVIDIA GPU found: NVML library not found" in text
    assert "FAILED   speed/bad: bad went wrong" in text
    assert "report.html" in lines[-2]


def test_telemetry_chart_only_with_samples(tmp_path: Path) -> None:
    assert report.telemetry_chart([_check("a")], tmp_path / "t.png") is None
    c = _check("m")
    samples = [
        {
            "t": t / 10,
            "util_pct": 90,
            "sm_mhz": 1900,
            "power_w": 300.0,
            "temperature_c": 60,
            "clock_events": [],
        }
        for t in range(5)
    ]
    c["telemetry"] = [{"label": "matmul fp32", "samples": samples}]
    assert report.telemetry_chart([c], tmp_path / "t.png").is_file()


def _diagnosis(first_broken: str | None, gpu_found: bool) -> dict[str, Any]:
    layers = [{"name": "hardware", "status": "OK" if gpu_found else "n/a", "summary": "1 NVIDIA GPU(s)"}]
    if first_broken:
        layers.append({"name": first_broken, "status": "BROKEN", "summary": "no module",
                       "cause": "no NVIDIA driver is installed", "remedy": "make provision"})  # fmt: skip
    return {"layers": layers, "gpu_found": gpu_found, "first_broken": first_broken,
            "no_gpu_reason": None if gpu_found else "no PCI device of vendor 0x10de"}  # fmt: skip


def test_a_gpu_with_a_broken_layer_is_never_called_no_gpu(tmp_path: Path) -> None:
    data = _report([_check("a", "failed")])
    data["gpu"] = {"available": False, "reason": "no NVIDIA driver is installed", "gpus": []}
    data["diagnosis"] = _diagnosis("kernel_module", gpu_found=True)
    text = report.summary_text(data, tmp_path)
    assert "BROKEN at the kernel module layer: no NVIDIA driver is installed" in text
    assert "run: make provision" in text and "no NVIDIA GPU found" not in text
    page = report.render_html(data, tmp_path)
    assert 'id="diagnosis"' in page and "make provision" in page and "No NVIDIA GPU found" not in page


def test_no_gpu_says_why(tmp_path: Path) -> None:
    data = _report([_check("a")])
    data["diagnosis"] = _diagnosis(None, gpu_found=False)
    assert "no NVIDIA GPU found: no PCI device of vendor 0x10de" in report.summary_text(data, tmp_path)
    assert "No NVIDIA GPU found: no PCI device" in report.render_html(data, tmp_path)


def _report_with_workload_data(dataset: dict) -> dict:
    check = {"id": "w", "name": "workload[mnist]", "category": "workloads", "status": "passed",
             "details": {"dataset": dataset}, "figures": {}}  # fmt: skip
    return {"verdict": "PASSED", "level": "quick", "backend": "tensorflow", "duration_s": 1.0,
            "counts": {"passed": 1}, "gpu": {"available": True, "reason": "", "gpus": []},
            "require_gpu": False, "diagnosis": {"gpu_found": True}, "checks": [check]}  # fmt: skip


def test_summary_says_when_the_workloads_trained_on_the_fallback(tmp_path):
    fallback = {"name": "digits_fallback", "source": "sklearn.datasets.load_digits", "fallback": True}
    text = report.summary_text(_report_with_workload_data(fallback), tmp_path)
    assert "!! the workloads trained on the fallback digits_fallback" in text and "NOT MNIST" in text
    text = report.summary_text(_report_with_workload_data({"name": "mnist", "fallback": False}), tmp_path)
    assert "NOT MNIST" not in text and "data: mnist" in text


def _workload_check(dataset: dict, regime: dict | None = None) -> dict[str, Any]:
    check = _check("workloads::mnist")
    check.update(category="workloads", name="workload[mnist]")
    check["details"] = {"dataset": dataset, "regime": regime}
    return check


def test_html_carries_every_warning_the_summary_prints(tmp_path):
    fallback = {"name": "digits_fallback", "source": "sklearn.datasets.load_digits", "fallback": True,
                "train_size": 1437, "test_size": 360}  # fmt: skip
    for diagnosis in (_diagnosis(None, gpu_found=False), _diagnosis("kernel_module", gpu_found=True)):
        data = _report([_workload_check(fallback)])
        data["diagnosis"] = {**diagnosis, "staged_root": "/tmp/staged"}
        said = report.warnings(data)
        text, page = report.summary_text(data, tmp_path), report.render_html(data, tmp_path)
        assert len(said) >= 4 and any("NOT MNIST" in w for w in said)
        printed = [line.removeprefix("  !! ") for line in text.splitlines() if line.startswith("  !! ")]
        assert printed == said  # the terminal prints exactly these ...
        for warning in said:  # ... and the page shows every one
            shown = html.escape(warning[:1].upper() + warning[1:])
            assert f'<p class="warn">{shown}</p>' in page, warning


def test_html_shows_the_data_each_workload_was_judged_on(tmp_path):
    mnist = {"name": "mnist", "source": "idx:/data/mnist", "fallback": False, "train_size": 30000,
             "test_size": 2000}  # fmt: skip
    data = _report([_workload_check(mnist, {"train_images": 30000, "epochs": 1, "steps": 469})])
    page = report.render_html(data, tmp_path)
    table = page[page.index('<table id="data">') :]
    assert "workload[mnist]" in table and "idx:/data/mnist" in table
    assert "30,000 images x 1 epoch = 469 steps" in table and "NOT MNIST" not in page
    assert "data: mnist" in report.summary_text(data, tmp_path)
    assert 'id="data"' not in report.render_html(_report([_check("a")]), tmp_path)  # no workloads, no table
