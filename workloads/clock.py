"""The one timestamp format of the workloads' files (result.json, the assets manifest): UTC, to the second."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
