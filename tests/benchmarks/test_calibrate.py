"""make calibrate's report: per metric and per whole check, healthy runs against broken ones."""

from __future__ import annotations

from benchmarks import calibrate
from workloads.harness import thresholds

TABLE = thresholds.load_thresholds()


def run(accuracy: float) -> dict:
    return {"status": "passed", "metrics": {"test_accuracy": accuracy}}


def test_margin_is_the_worst_healthy_run_minus_the_threshold():
    rule = thresholds.thresholds_for("mnist", "stage5", "quick", "fashion_mnist", TABLE)["test_accuracy"]
    _, value = thresholds.parse(rule)
    case = "mnist/stage5/fashion_mnist"
    runs = {f"{case}/0": run(value + 0.01), f"{case}/1": run(value + 0.05), f"{case}/0/control": run(0.10)}
    rows = [r for r in calibrate.summarize(runs, TABLE) if r["judged_as"] == "fashion_mnist"]
    (row,) = rows
    assert row["margin"] == (value + 0.01) - value and row["passed"] == 2 and row["broken_passed"] == 0


def test_a_broken_run_that_passes_the_check_shows():
    runs = {"mnist/stage5/fashion_mnist/0": run(0.70), "mnist/stage5/fashion_mnist/0/control": run(0.99)}
    verdict = {v["dataset"]: v for v in calibrate.verdicts(runs, TABLE)}["fashion_mnist"]
    assert verdict["healthy"] == "0/1" and verdict["broken"] == "1/1"
