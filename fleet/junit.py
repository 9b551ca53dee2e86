"""junit.xml of a fleet run, for CI systems: one test case per host (reached, toolkit found, report fetched
and readable) and one per host and check, named `<host>` / `<check>` (e.g. speed/matmul_tflops[fp32])."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from smoke_tests.report import NOT_PASSED

# What XML 1.0 cannot hold (control characters in a host name or a message) becomes U+FFFD.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: object) -> str:
    return NOT_XML.sub("\ufffd", str(value))


def _case(suite: ET.Element, host: str, name: str) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=_text(host), name=_text(name), time="0")


def render(data: dict[str, Any]) -> bytes:
    suites = ET.Element("testsuites", name="keras-workstation fleet smoke test")
    suite = ET.SubElement(suites, "testsuite", name="fleet", timestamp=data["created"])
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for name, host in data["hosts"].items():
        case = _case(suite, name, "host")
        counts["tests"] += 1
        problem = host.get("problem") or {}
        if host["verdict"] == "unreachable":
            ET.SubElement(
                case, "error", type=problem.get("kind", "unreachable"), message=_text(host["reason"] or "")
            )
            counts["errors"] += 1
        elif problem and problem["kind"] != "checks":
            ET.SubElement(case, "failure", type=problem["kind"], message=_text(problem["message"] or ""))
            counts["failures"] += 1
        messages = {c["check"]: c.get("message") or c["status"] for c in host["failed_checks"]}
        for check, status in host["checks"].items():
            case = _case(suite, name, check)
            counts["tests"] += 1
            if status in NOT_PASSED:
                ET.SubElement(case, "failure", type=_text(status), message=_text(messages.get(check, status)))
                counts["failures"] += 1
            elif status == "skipped":
                ET.SubElement(case, "skipped")
                counts["skipped"] += 1
    for key, value in counts.items():
        suite.set(key, str(value))
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True)
