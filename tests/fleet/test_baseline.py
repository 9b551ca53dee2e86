"""Against an earlier fleet.json: what changed per host; an unreadable baseline is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.baseline import BaselineError, compare_fleets, load_baseline

from .staging import fingerprint_of


def record(
    verdict: str = "passed", tflops: float = 100.0, status: str = "passed", **fp: Any
) -> dict[str, Any]:
    return {
        "verdict": verdict,
        "checks": {"speed/m": status, "system/env": status},
        "figures": {"speed/m": {"tflops": {"value": tflops, "unit": "TFLOP/s", "better": "higher"}}},
        "fingerprint": fingerprint_of(**fp),
    }


def test_each_hosts_changes_are_named() -> None:
    old = {"created": "then", "hosts": {"a": record(), "b": record(), "c": record(), "gone": record()}}
    new = {
        "a": record(),
        "b": record(tflops=70.0, **{"installed.rich": "14.0.0"}),
        "c": record("failed", status="failed"),
        "new": record(),
    }
    comparison = compare_fleets(old, new, "old/fleet.json")
    assert comparison["new_hosts"] == ["new"] and comparison["gone_hosts"] == ["gone"]
    assert comparison["hosts"]["a"]["changed"] is False
    b = comparison["hosts"]["b"]
    assert b["changed"] and b["fingerprint_changed"] == ["installed.rich"]
    assert [(r["check"], r["figure"], r["now"]) for r in b["regressions"]] == [("speed/m", "tflops", 70.0)]
    c = comparison["hosts"]["c"]
    assert c["verdict"] == {"was": "passed", "now": "failed"}
    assert {r["check"] for r in c["regressions"]} == {"speed/m", "system/env"}


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{", "not valid JSON"),
        ("[]", "not a fleet.json (no 'hosts' object)"),
        (json.dumps({"hosts": {"a": {"verdict": "maybe"}}}), "hosts['a'] has no verdict of passed, failed"),
        (
            json.dumps({"hosts": {"a": {"verdict": "passed", "checks": []}}}),
            "hosts['a'].checks is not an object",
        ),
        (
            json.dumps({"hosts": {"a": {"verdict": "passed", "figures": {"c": {"f": {"value": "9"}}}}}}),
            "hosts['a'].figures['c']['f'] has no numeric value",
        ),
    ],
)
def test_an_unusable_baseline_is_refused_in_one_line(tmp_path: Path, content: str, why: str) -> None:
    path = tmp_path / "fleet.json"
    path.write_text(content)
    with pytest.raises(BaselineError) as err:
        load_baseline(path)
    assert why in str(err.value) and "\n" not in str(err.value)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
HOST = st.fixed_dictionaries(
    {"verdict": st.sampled_from(["passed", "failed", "unreachable"]) | JSON},
    optional={
        "checks": st.dictionaries(st.sampled_from(["speed/m", "x"]), JSON, max_size=2) | JSON,
        "figures": st.dictionaries(st.sampled_from(["speed/m", "x"]), JSON, max_size=2) | JSON,
        "fingerprint": JSON,
    },
)
BASELINE = (
    st.fixed_dictionaries({"hosts": st.dictionaries(st.sampled_from(["a", "b"]), HOST | JSON) | JSON}) | JSON
)


@settings(max_examples=300)
@given(BASELINE)
def test_any_baseline_is_compared_or_refused_in_one_line(tmp_path_factory, baseline: Any) -> None:
    path = tmp_path_factory.mktemp("baseline") / "fleet.json"
    try:
        path.write_text(json.dumps(baseline))
    except ValueError:
        return
    try:
        data = load_baseline(path)
    except BaselineError as err:
        assert "\n" not in str(err)
        return
    comparison = compare_fleets(data, {"a": record(), "b": record("failed", 50.0, "failed")}, str(path))
    json.dumps(comparison)
