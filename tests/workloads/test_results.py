"""result.json's schema and the thresholds file."""

from __future__ import annotations

import jsonschema
import pytest

from workloads.harness import results, thresholds
from workloads.harness.run import RunContext, RunRecord, build_result, level


def make_result(tmp_path, metrics: dict, dataset: str = "mnist", quick: bool = False) -> dict:
    ctx = RunContext(workload="mnist", out_dir=tmp_path, backend="tensorflow", level=level(quick))
    ctx.record = RunRecord(
        variant="stage5",
        metrics=metrics,
        dataset={"name": dataset, "source": "test", "fallback": False, "train_size": 1, "test_size": 1},
    )
    return build_result(ctx)


def test_built_result_follows_the_schema(tmp_path):
    result = make_result(tmp_path, {"test_accuracy": 0.995})
    results.validate(result)
    assert result["status"] == "passed"
    assert result["thresholds"]["test_accuracy"] == {
        "op": ">=",
        "value": 0.994,
        "actual": 0.995,
        "passed": True,
    }
    assert result["fingerprint"]["lock_sha256"] and len(result["fingerprint"]["lock_sha256"]) == 64


def test_threshold_can_fail(tmp_path):
    result = make_result(tmp_path, {"test_accuracy": 0.99})
    assert result["status"] == "failed" and "test_accuracy" in result["message"]


def test_missing_or_nan_metric_fails(tmp_path):
    assert make_result(tmp_path, {})["status"] == "failed"
    assert make_result(tmp_path, {"test_accuracy": float("nan")})["status"] == "failed"


def test_a_dataset_without_thresholds_is_unchecked(tmp_path):
    """Only a user's own image folder (transfer --base inception_v3) has none; say so, do not fail."""
    result = make_result(tmp_path, {"test_accuracy": 0.5}, dataset="image_folder")
    assert result["status"] == "unchecked" and result["thresholds"] == {}
    assert "no thresholds for dataset 'image_folder'" in result["message"]


def test_a_users_own_mnist_format_folder_is_judged(tmp_path):
    result = make_result(tmp_path, {"test_accuracy": 0.5}, dataset="idx", quick=True)
    assert result["status"] == "failed" and "test_accuracy" in result["thresholds"]


def test_schema_rejects_a_broken_result(tmp_path):
    result = make_result(tmp_path, {"test_accuracy": 0.995})
    del result["timings"]
    with pytest.raises(jsonschema.ValidationError):
        results.validate(result)
    result = make_result(tmp_path, {"test_accuracy": 0.995})
    result["status"] = "great"
    with pytest.raises(jsonschema.ValidationError):
        results.validate(result)


def test_write_result_is_atomic_and_strict_json(tmp_path):
    result = make_result(tmp_path, {"test_accuracy": 0.995, "test_loss": float("inf")})
    path = results.write_result(tmp_path, result)
    text = path.read_text()
    assert "Infinity" not in text and '"test_loss": null' in text
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left behind


def test_every_threshold_in_the_file_parses():
    table = thresholds.load_thresholds()
    rules = [
        rule
        for wl in table.values()
        for variant in wl.values()
        for level in variant.values()
        for ds in level.values()
        for rule in ds.values()
    ]
    assert len(rules) >= 15
    for rule in rules:
        _op, value = thresholds.parse(rule)
        assert -1 <= value <= 1e6  # margins may sit below zero (transfer on Fashion-MNIST)


def test_issue_thresholds_are_the_ones_in_the_file():
    assert thresholds.thresholds_for("mnist", "stage5", "full", "mnist") == {"test_accuracy": ">= 0.994"}
    # quick: calibrated on the real MNIST's one-epoch regime (benchmarks/results/calibration/calibration.md)
    assert thresholds.thresholds_for("mnist", "stage5", "quick", "mnist") == {"test_accuracy": ">= 0.95"}
    assert thresholds.thresholds_for("moons", "default", "full", "generated") == {"test_accuracy": ">= 0.98"}


def test_bad_operator_is_refused():
    with pytest.raises(ValueError, match="operator"):
        thresholds.parse("== 1")


def test_written_files_follow_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        path = results.write_result(tmp_path, make_result(tmp_path, {"test_accuracy": 0.995}))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644, "not 0600 like mkstemp's file: a mounted run dir is shared"


def test_the_run_level_is_named_once_and_checked(tmp_path):
    """The CLI decides the level once; the recipes' `quick` and result.json's `level` are read from it."""
    quick = RunContext(workload="moons", out_dir=tmp_path, backend="jax", level="quick")
    assert quick.quick and build_result(quick)["level"] == "quick"
    full = RunContext(workload="moons", out_dir=tmp_path, backend="jax")
    assert not full.quick and build_result(full)["level"] == "full"
    with pytest.raises(ValueError, match="unknown level 'medium'"):
        RunContext(workload="moons", out_dir=tmp_path, backend="jax", level="medium")
