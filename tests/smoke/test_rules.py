"""Measurement statistics, the throttle rule and the expected-values table (the GPU compatibility rules:
tests/gpu_doctor/test_rules.py)."""

from __future__ import annotations

import pytest

from smoke_tests import speed


def test_summarize_median_and_spread() -> None:
    stats = speed.summarize([10.0, 12.0, 8.0])
    assert stats["median"] == 10.0 and stats["spread"] == pytest.approx(0.4) and stats["n"] == 3
    with pytest.raises(ValueError):
        speed.summarize([])


def test_time_repeats_excludes_warmup() -> None:
    calls = []
    times = speed.time_repeats(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and len(times) == 3


def test_throttle_rule() -> None:
    quiet = [{"clock_events": []}, {"clock_events": ["gpu_idle"]}, {"clock_events": ["sw_power_cap"]}]
    assert speed.throttle_events(quiet) == []
    speed.check_not_throttled({"window": quiet})  # the power cap alone does not invalidate
    hot = [*quiet, {"clock_events": ["hw_thermal_slowdown", "sw_power_cap"]}, {"clock_events": "n/a"}]
    assert speed.throttle_events(hot) == ["hw_thermal_slowdown"]
    with pytest.raises(speed.InvalidMeasurement, match=r"invalid.*during matmul \(hw_thermal_slowdown\)$"):
        speed.check_not_throttled({"matmul": hot})
    with pytest.raises(speed.InvalidMeasurement, match=r"during ladder: XLA \(hw_thermal_slowdown\)$"):
        speed.check_not_throttled({"ladder: baseline": quiet, "ladder: XLA": hot})  # the rungs that throttled


def test_expected_table_lookup_and_judgement() -> None:
    h100 = speed.expected_for("NVIDIA H100 80GB HBM3")
    assert h100["model"] == "h100_sxm" and h100["expected_fp32"] == pytest.approx(67.0 * 0.8, rel=1e-3)
    assert h100["basis_bf16"].startswith("published peak")
    assert speed.expected_for("NVIDIA A100-SXM4-80GB")["model"] == "a100"  # not the A10 entry
    assert speed.expected_for("NVIDIA L40S")["model"] == "l40s"  # not the L4 entry
    assert "expected_tf32" not in speed.expected_for("Tesla V100-SXM2-16GB")
    assert speed.expected_for("Some Future GPU") is None
    derate = h100["derate"]
    assert speed.judge(45.0, 53.6, derate)[0] is True
    assert speed.judge(30.0, 53.6, derate) == (False, "30 vs expected 53.6 (floor 40.2): too slow")
    assert speed.judge(1.0, None, derate)[0] is True  # unknown GPU: report only


def test_measured_entries_override_the_estimate() -> None:
    table = {
        "derate": 0.75,
        "efficiency": {"fp32": 0.8},
        "gpus": {"x": {"match": ["X"], "peak_fp32": 10.0, "measured_fp32": 9.1}},
    }
    entry = speed.expected_for("GPU X", table)
    assert entry["expected_fp32"] == 9.1 and entry["basis_fp32"] == "measured"


def test_every_table_entry_is_complete() -> None:
    table = speed.expected_table()
    assert 0 < table["derate"] < 1
    for key, entry in table["gpus"].items():
        assert entry["match"] and entry["source"], key
        assert entry["peak_fp32"] > 0, key


def test_pcie_theoretical() -> None:
    assert speed.pcie_theoretical_gbs(4, 16) == 31.5
    assert speed.pcie_theoretical_gbs("n/a", 16) is None
