"""Issue 25: the smoke report is a dataclass (smoke_tests/smoke_report.py); report.json keeps its keys, in
their order, the optional ones (comparison, timeline, incomplete, interrupted) only when they apply."""

from __future__ import annotations

from smoke_tests.smoke_report import SCHEMA_VERSION, SmokeReport

ALWAYS = ["schema_version", "created", "level", "backend", "require_gpu", "gpu", "diagnosis", "checks",
          "devices", "counts", "fingerprint", "charts", "not_written", "verdict", "duration_s", "time",
          "notes", "warmup"]  # fmt: skip


def _report() -> SmokeReport:
    return SmokeReport(created="2025-01-01T00:00:00+00:00", level="quick", backend="tensorflow",
                       require_gpu=False, gpu={}, diagnosis={}, checks=[], devices=[], counts={},
                       fingerprint={})  # fmt: skip


def test_report_json_has_the_keys_of_before_in_their_order() -> None:
    data = _report().to_json()
    assert list(data) == ALWAYS and data["schema_version"] == SCHEMA_VERSION and data["warmup"] is None


def test_the_optional_keys_come_where_they_came_before() -> None:
    full = _report()
    full.comparison, full.timeline, full.incomplete, full.interrupted = {"r": 1}, {"t": 1}, {"i": 1}, "SIGINT"
    keys = list(full.to_json())
    assert keys == [*ALWAYS[:13], "comparison", *ALWAYS[13:16], "timeline", "incomplete", *ALWAYS[16:],
                    "interrupted"]  # fmt: skip
