"""One host's outcome from its folder: every way a host can fail is a verdict with a reason, never a crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.host import read_host, read_hosts

from .staging import check, host_record, report, stage_host

UNREACHABLE = {"unreachable": True, "msg": "Failed to connect to the host via ssh: connect to host: No route"}


def read(tmp_path: Path, name: str = "ws1", **kw: Any) -> dict[str, Any]:
    return read_host(stage_host(tmp_path, name, **kw), tmp_path)


def test_a_host_whose_checks_passed_passes_with_its_figures(tmp_path: Path) -> None:
    data = report(
        [check("speed", "matmul", tflops=50.0), check("system", "gpu_found")],
        gpus=["NVIDIA H100"] * 2,
        driver="580.95",
    )
    host = read(tmp_path, report_data=data)
    assert host["verdict"] == "passed" and host["problem"] is None and host["reason"] is None
    assert (
        host["gpus"]["model"] == "NVIDIA H100"
        and host["gpus"]["count"] == 2
        and host["gpus"]["driver"] == "580.95"
    )
    assert host["group"] == "2 x NVIDIA H100"
    assert host["figures"] == {"speed/matmul": {"tflops": {"value": 50.0, "unit": "u", "better": "higher"}}}
    assert host["headline"] == [{"check": "speed/matmul", "figure": "tflops", "value": 50.0, "unit": "u"}]
    assert host["files"]["report.html"] == "hosts/ws1/report.html"


def test_a_failed_check_is_named_with_its_message(tmp_path: Path) -> None:
    data = report([check("system", "environment_variables", "failed", "CUDA_PROFILE (DCGM flags it)")])
    host = read(tmp_path, record=host_record("ws1", {"smoke": {"failed": False, "rc": 1}}), report_data=data)
    assert host["verdict"] == "failed" and host["problem"]["kind"] == "checks"
    assert host["reason"] == "system/environment_variables: CUDA_PROFILE (DCGM flags it)"


@pytest.mark.parametrize(
    ("steps", "kind", "reason"),
    [
        ({"reach": UNREACHABLE}, "unreachable", UNREACHABLE["msg"]),
        ({"smoke": UNREACHABLE}, "lost", f"lost during the smoke test: {UNREACHABLE['msg']}"),
        ({"fetch": UNREACHABLE}, "lost", f"lost during fetching the reports: {UNREACHABLE['msg']}"),
    ],
)
def test_unreachable_hosts_keep_ansibles_reason(tmp_path: Path, steps: dict, kind: str, reason: str) -> None:
    host = read(tmp_path, record=host_record("ws1", steps))
    assert host["verdict"] == "unreachable" and host["problem"]["kind"] == kind and host["reason"] == reason


def test_a_host_without_the_toolkit_is_told_to_run_make_provision(tmp_path: Path) -> None:
    host = read(tmp_path, record=host_record("ws1", toolkit_found=False))
    assert host["verdict"] == "failed" and host["problem"]["kind"] == "not_installed"
    assert (
        "run make provision" in host["reason"] and host["problem"]["remedy"] == "make provision HOSTS=ws1.lab"
    )


def test_root_is_refused(tmp_path: Path) -> None:
    host = read(tmp_path, record=host_record("ws1", uid="0"))
    assert host["verdict"] == "failed" and host["problem"]["kind"] == "root"


def test_a_smoke_test_past_its_time_limit_fails_the_host(tmp_path: Path) -> None:
    """The task's `timeout` as ansible-core 2.19 reports it."""
    timedout = {
        "failed": True,
        "msg": "Task failed: Timed out after 1800 second(s).",
        "timedout": {"period": 1800},
    }
    host = read(tmp_path, record=host_record("ws1", {"smoke": timedout}))
    assert host["verdict"] == "failed" and host["problem"]["kind"] == "timeout"
    assert host["reason"] == f"the smoke test ran past its limit of 1800 s (--timeout): {timedout['msg']}"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{not json", "report.json: not valid JSON"),
        ("[1, 2]", "report.json: not a smoke-test report (no 'checks' list)"),
        (json.dumps({"checks": [{"id": 1}]}), "checks[0] has no text 'id' and 'status'"),
        (json.dumps({"checks": []}), "report.json: not a smoke-test report (no 'verdict')"),
        ("[" * 100000, "report.json: not valid JSON"),
    ],
)
def test_a_broken_fetched_report_fails_that_host_only(tmp_path: Path, text: str, why: str) -> None:
    host = read(tmp_path, report_data=text)
    assert host["verdict"] == "failed" and host["problem"]["kind"] == "bad_report"
    assert why in host["reason"], host["reason"]


def test_no_report_gives_the_smoke_tests_last_words(tmp_path: Path) -> None:
    record = host_record(
        "ws1", {"smoke": {"failed": False, "rc": 2}}, smoke_stderr_tail="x\nsmoke_tests: error: bad"
    )
    host = read(tmp_path, record=record)
    assert host["problem"]["kind"] == "no_report"
    assert host["reason"] == "no report.json (smoke test exit 2: smoke_tests: error: bad)"


def test_a_planned_host_with_no_record_is_a_failure(tmp_path: Path) -> None:
    stage_host(tmp_path, "ws1", report_data=report([check("speed", "m", x=1.0)]))
    (tmp_path / "hosts" / "odd").mkdir()  # a folder without host.json (Ansible stopped while writing it)
    hosts = read_hosts(tmp_path, ["ws1", "ws2"])
    assert hosts["ws1"]["verdict"] == "passed"
    assert hosts["ws2"]["verdict"] == "failed" and hosts["ws2"]["problem"]["kind"] == "no_record"
    assert set(hosts) == {"ws1", "ws2"}


def test_the_real_name_comes_from_host_json_not_the_folder(tmp_path: Path) -> None:
    folder = stage_host(
        tmp_path, "a/b", record=host_record("a/b"), report_data=report([check("speed", "m", x=1.0)])
    )
    assert folder.name == "a_b"
    assert set(read_hosts(tmp_path, ["a/b"])) == {"a/b"}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
CHECK = st.fixed_dictionaries(
    {"id": st.text(max_size=5), "status": st.sampled_from(["passed", "failed", "skipped"])},
    optional={
        "category": JSON,
        "name": JSON,
        "figures": st.dictionaries(st.text(max_size=5), JSON, max_size=2),
    },
)
REPORT = st.fixed_dictionaries(
    {"checks": st.lists(CHECK | JSON, max_size=3)},
    optional={
        "verdict": st.sampled_from(["PASSED", "FAILED"]) | JSON,
        "gpu": JSON,
        "fingerprint": JSON,
        "level": JSON,
        "duration_s": JSON,
    },
)


@settings(max_examples=200)
@given(st.one_of(REPORT, JSON), st.one_of(st.none(), JSON))
def test_any_fetched_json_is_read_or_refused_never_a_crash(tmp_path_factory, data: Any, doctor: Any) -> None:
    run_dir = tmp_path_factory.mktemp("run")
    files = {} if doctor is None else {"doctor_json": json.dumps(doctor)}
    host = read_host(stage_host(run_dir, "ws1", report_data=json.dumps(data), **files), run_dir)
    assert host["verdict"] in ("passed", "failed") and (host["verdict"] == "passed") == (
        host["problem"] is None
    )
    json.dumps(host)  # what fleet.json will hold


def test_the_doctors_broken_layer_and_gpus_are_kept_when_the_smoke_test_left_no_report(
    tmp_path: Path,
) -> None:
    doctor = {
        "gpu_found": True,
        "nvml": {"gpus": [{"name": "NVIDIA A100"}], "driver_version": "535.1"},
        "layers": [
            {"name": "hardware", "status": "OK"},
            {
                "name": "nvml",
                "status": "BROKEN",
                "cause": "Driver/library version mismatch",
                "remedy": "sudo reboot",
            },
        ],
    }
    record = host_record("ws1", {"smoke": {"failed": False, "rc": 2}})
    host = read(tmp_path, record=record, doctor_json=json.dumps(doctor))
    assert host["doctor"] == {
        "gpu_found": True,
        "first_broken": "nvml",
        "cause": "Driver/library version mismatch",
        "remedy": "sudo reboot",
    }
    assert host["gpus"]["model"] == "NVIDIA A100" and host["gpus"]["driver"] == "535.1"
    assert host["problem"]["kind"] == "no_report" and host["group"] is None  # no figures to compare
