"""Pass/fail thresholds, read from `thresholds.toml` (the one data file) and checked against metrics."""

from __future__ import annotations

import operator
import tomllib
from pathlib import Path

THRESHOLDS_FILE = Path(__file__).with_name("thresholds.toml")
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def load_thresholds(path: Path = THRESHOLDS_FILE) -> dict:
    return tomllib.loads(Path(path).read_text())


def thresholds_for(workload: str, variant: str, level: str, dataset: str, table: dict | None = None) -> dict:
    """The `{metric: "op value"}` entries for one run; empty when the file has none for it."""
    table = load_thresholds() if table is None else table
    return dict(table.get(workload, {}).get(variant, {}).get(level, {}).get(dataset, {}))


def parse(rule: str) -> tuple[str, float]:
    op, _, value = rule.strip().partition(" ")
    if op not in _OPS:
        raise ValueError(f"threshold {rule!r}: operator must be one of {', '.join(_OPS)}")
    return op, float(value)


def check(metrics: dict, rules: dict) -> dict:
    """Judge each rule: `{metric: {op, value, actual, passed}}`; a missing or NaN metric fails."""
    verdicts = {}
    for metric, rule in rules.items():
        op, value = parse(rule)
        actual = metrics.get(metric)
        passed = actual is not None and actual == actual and bool(_OPS[op](actual, value))
        verdicts[metric] = {"op": op, "value": value, "actual": actual, "passed": passed}
    return verdicts
