"""The fleet report as a whole: fleet.json's interface, fleet.html, junit.xml and the summary, from staged run
folders (no Ansible): a fleet with every kind of host, hostile host names, and any fetched JSON."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fleet import report

from .staging import check, fingerprint_of, host_record, stage_host, stage_run
from .staging import report as smoke_report

LOST = {"unreachable": True, "msg": "Failed to connect to the host via ssh: Timeout, server not responding"}


def staged_fleet(run: Path) -> Path:
    names = ["ok1", "ok2", "ok3", "slow", "drift", "fail", "cut", "ghost", "<b>x</b>"]
    stage_run(run, names)
    for name in ("ok1", "ok2", "ok3", "<b>x</b>"):
        stage_host(run, name, report_data=smoke_report([check("speed", "m", x=100.0)]))
    stage_host(run, "slow", report_data=smoke_report([check("speed", "m", x=70.0)]))
    fp = fingerprint_of(**{"installed.rich": "14.0.0"})
    stage_host(run, "drift", report_data=smoke_report([check("speed", "m", x=101.0)], fingerprint=fp))
    failing = [check("speed", "m", x=99.0), check("system", "env", "failed", "CUDA_PROFILE is set")]
    stage_host(run, "fail", host_record("fail", {"smoke": {"failed": False, "rc": 1}}), smoke_report(failing))
    stage_host(run, "cut", host_record("cut", {"smoke": LOST}))
    stage_host(
        run, "ghost", host_record("ghost", {"reach": {"unreachable": True, "msg": "No route to host"}})
    )
    return run


def build(run: Path, **kw: Any) -> dict[str, Any]:
    plan = json.loads((run / "plan.json").read_text())
    data = report.build(run, plan, {"rc": 0, "interrupted": None}, **kw)
    report.write(run, data)
    return json.loads((run / "fleet.json").read_text())


def test_fleet_json_keeps_the_interface_scripts_read(tmp_path: Path) -> None:
    data = build(staged_fleet(tmp_path / "run"))
    verdicts = {name: host["verdict"] for name, host in data["hosts"].items()}
    assert verdicts == {
        "ok1": "passed",
        "ok2": "passed",
        "ok3": "passed",
        "<b>x</b>": "passed",
        "slow": "passed",
        "drift": "passed",
        "fail": "failed",
        "cut": "unreachable",
        "ghost": "unreachable",
    }
    assert data["verdict"] == "FAILED" and data["counts"] == {"passed": 6, "failed": 1, "unreachable": 2}
    assert [(d["field"], d["values"]) for d in data["drift"]] == [
        ("installed.rich", {"15.0.0": ["<b>x</b>", "fail", "ok1", "ok2", "ok3", "slow"], "14.0.0": ["drift"]})
    ]
    assert [{k: o[k] for k in ("host", "check", "figure", "value", "median")} for o in data["outliers"]] == [
        {"host": "slow", "check": "speed/m", "figure": "x", "value": 70.0, "median": 100.0}
    ]
    assert data["hosts"]["cut"]["reason"] == f"lost during the smoke test: {LOST['msg']}"


def test_the_summary_names_each_problem(tmp_path: Path) -> None:
    run = staged_fleet(tmp_path / "run")
    text = report.summary_text(build(run), run)
    assert "FLEET SMOKE TEST FAILED  (9 hosts, level quick): 6 passed, 1 failed, 2 unreachable" in text
    for line in (
        "installed.rich: 14.0.0 on drift (others: 15.0.0)",
        "system/env: CUDA_PROFILE is set",
        "lost during the smoke test",
        "No route to host",
        "slow: speed/m x 70 u against a median of 100",
    ):
        assert line in text, (line, text)


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags, self.tables, self.table = [], {}, None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "table":
            self.table = dict(attrs).get("id")
        if tag == "tr" and self.table:
            self.tables[self.table] = self.tables.get(self.table, 0) + 1


def test_fleet_html_escapes_host_names_and_draws_each_compared_figure(tmp_path: Path) -> None:
    run = staged_fleet(tmp_path / "run")
    build(run)
    page = Page()
    html = (run / "fleet.html").read_text()
    page.feed(html)
    assert "b" not in page.tags and "&lt;b&gt;x&lt;/b&gt;" in html  # the host called <b>x</b> stays text
    assert page.tables["hosts"] == 10 and page.tables["not-run"] == 3 and page.tables["outliers"] == 2
    assert page.tags.count("svg") == 1 and page.tags.count("rect") == 7  # speed/m over the 7 hosts that ran
    assert 'href="hosts/ok1/report.html"' in html


def test_junit_has_one_case_per_host_and_check(tmp_path: Path) -> None:
    run = staged_fleet(tmp_path / "run")
    build(run)
    suite = ET.parse(run / "junit.xml").getroot().find("testsuite")
    cases = {(c.get("classname"), c.get("name")): c for c in suite.iter("testcase")}
    assert len(cases) == 9 + 8  # a "host" case per host, plus a case per check of the 7 hosts that ran
    assert cases[("fail", "system/env")].find("failure").get("message") == "CUDA_PROFILE is set"
    assert cases[("cut", "host")].find("error").get("type") == "lost"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("17", "1", "2")


def test_against_a_baseline_the_changes_are_in_every_output(tmp_path: Path) -> None:
    old_run = staged_fleet(tmp_path / "old")
    old = build(old_run)
    run = stage_run(tmp_path / "new", ["ok1", "slow"])
    stage_host(run, "ok1", report_data=smoke_report([check("speed", "m", x=50.0)]))
    stage_host(run, "slow", report_data=smoke_report([check("speed", "m", x=70.0)]))
    data = build(run, baseline=old, baseline_source="old/fleet.json")
    assert data["comparison"]["gone_hosts"] == ["<b>x</b>", "cut", "drift", "fail", "ghost", "ok2", "ok3"]
    assert data["comparison"]["hosts"]["ok1"]["regressions"][0]["figure"] == "x"
    assert data["comparison"]["hosts"]["slow"]["changed"] is False
    assert "ok1: speed/m x -50.0% (tolerance 10%)" in report.summary_text(data, run)
    assert 'id="comparison"' in (run / "fleet.html").read_text()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
CHECK = st.fixed_dictionaries(
    {
        "id": st.text(max_size=4),
        "status": st.sampled_from(["passed", "failed", "skipped"]),
        "figures": st.dictionaries(
            st.sampled_from(["x", "y"]),
            st.fixed_dictionaries(
                {"value": st.floats(allow_nan=False, allow_infinity=False) | st.integers()},
                optional={"better": st.sampled_from(["higher", "lower", None]), "unit": JSON},
            ),
            max_size=2,
        ),
    },
    optional={"category": st.sampled_from(["speed", "system"]) | JSON, "name": JSON, "message": JSON},
)
REPORT = st.fixed_dictionaries(
    {"checks": st.lists(CHECK, max_size=3), "verdict": st.sampled_from(["PASSED", "FAILED"])},
    optional={
        "gpu": JSON,
        "fingerprint": st.dictionaries(st.text(max_size=5), JSON, max_size=3) | JSON,
        "level": JSON,
        "duration_s": JSON,
    },
)


@settings(max_examples=60)
@given(st.lists(REPORT | JSON, min_size=1, max_size=4), st.text(min_size=1, max_size=12))
def test_any_fetched_reports_give_a_whole_report(tmp_path_factory, reports: list[Any], odd_name: str) -> None:
    run = stage_run(
        tmp_path_factory.mktemp("fleet") / "run", [odd_name, *(f"h{i}" for i in range(len(reports)))]
    )
    for i, data in enumerate(reports):
        stage_host(run, f"h{i}", host_record(f"h{i}"), report_data=json.dumps(data))
    data = build(run)
    assert set(data["hosts"]) == {odd_name, *(f"h{i}" for i in range(len(reports)))}
    assert data["hosts"][odd_name]["verdict"] == "failed"  # planned, never recorded
    report.summary_text(data, run)
    ET.parse(run / "junit.xml")
    Page().feed((run / "fleet.html").read_text())


def test_no_escape_sequence_from_a_host_reaches_the_terminal(tmp_path: Path) -> None:
    run = stage_run(tmp_path / "run", ["evil"])
    failing = [check("system", "env", "failed", "\x1b]0;owned\x07\x1b[2Jgone")]
    stage_host(run, "evil", host_record("evil", {"smoke": {"failed": False, "rc": 1}}), smoke_report(failing))
    text = report.summary_text(build(run), run)
    assert "\x1b" not in text and "\x07" not in text and "?]0;owned??[2Jgone" in text
