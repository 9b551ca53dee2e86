"""result.json: its schema (result.schema.json, the one description), building, validating and writing it."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jsonschema

from workloads.atomic import write_json
from workloads.clock import now as now  # result.json's timestamps (harness/run.py)

SCHEMA_FILE = Path(__file__).with_name("result.schema.json")
SCHEMA_VERSION = 1


@cache
def schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


def validate(result: dict) -> None:
    """Raise jsonschema.ValidationError when `result` does not follow result.schema.json."""
    jsonschema.validate(result, schema())


def status_of(verdicts: dict) -> str:
    if not verdicts:
        return "unchecked"
    return "passed" if all(v["passed"] for v in verdicts.values()) else "failed"


def write_result(out_dir: Path, result: dict) -> Path:
    """Validate and write `out_dir/result.json` atomically."""
    validate(result)
    return write_json(Path(out_dir) / "result.json", result)
