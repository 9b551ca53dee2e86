"""`make fleet-smoke` against a lab of real hosts over SSH: copies of the rootfs that site.yml converged, each
with its own network namespace and sshd, reached with a key as Ansible reaches real machines.

The lab: two healthy hosts, one whose environment holds a drifted package (rich, not the locked version), one
whose /etc/environment sets a variable that breaks CUDA programs (its environment check fails), one limited to
a fifth of a core (its speed figures fall behind its peers'), one cut off while its smoke test runs (its link
goes down), one with no toolkit installed, and one that does not exist. The hosts run the smoke test at a tiny
level (LEVEL below: the moons workload and small speed checks, through --settings): six quick levels side by
side would not fit in CI's time on 2 cores.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require, require_tool

from .conftest import REPO, TIMINGS, USER, Converged, converged_host
from .fleet_lab import Lab, LabHost, chroot

pytestmark = [pytest.mark.ansible, pytest.mark.slow]
LEVEL = "tiny"
TINY_LEVEL = """
[levels.tiny]   # the fleet test's hosts: moons and small speed checks (see the module's docstring)
check_timeout_s = 300
suite_timeout_s = 900
workloads = ["moons"]
workload_args = ["--quick"]
transfer_args = ["--base", "self"]
repeats = 3
matmul_n = { gpu = 1024, cpu = 256 }
matmul_steps = { gpu = 10, cpu = 5 }
h2d_mib = 16
h2d_steps = 5
ladder_images = { gpu = 1024, cpu = 128 }
ladder_train_images = 256
ladder_steps_per_execution = { gpu = 4, cpu = 2 }
ladder_rungs = { gpu = 1, cpu = 1 }
"""
DRIFTED = ("rich", "14.0.0")  # uv.lock pins another version
HOSTILE = "CUDA_PROFILE"  # one of gpu_doctor/rules.toml's dcgm_hostile variables
GHOST = "../ghost host"  # no such machine; its name also tests the folder sanitising
HEALTHY = ("ok-1", "ok-2", "drift-1", "slow-1")
VENV_PYTHON = "/opt/keras-workstation/.venv/bin/python"


def drift_rich(host: LabHost) -> None:
    name, version = DRIFTED
    chroot(
        host.root,
        f"UV_NATIVE_TLS=1 UV_CACHE_DIR=/tmp/uv-cache /opt/keras-workstation-uv/bin/uv pip install -q "
        f"--python {VENV_PYTHON} {name}=={version} && rm -rf /tmp/uv-cache",
    )


def hostile_environment(host: LabHost) -> None:
    with (host.root / "etc/environment").open("a") as env:
        env.write(f"{HOSTILE}=1\n")


def remove_toolkit(host: LabHost) -> None:
    (host.root / VENV_PYTHON.lstrip("/")).unlink()


def cut_when_running(lab: Lab, name: str, done: threading.Event, log: list[str]) -> None:
    """Set the host's link down once its smoke test has recorded a check (mid-run)."""
    pattern = str(lab.hosts[name].root / "tmp" / "keras-workstation-fleet.*" / "report" / "results.jsonl")
    while not done.is_set():
        if any(Path(p).stat().st_size > 0 for p in glob.glob(pattern)):
            lab.cut(name)
            log.append(f"cut {name} at {time.strftime('%H:%M:%S')}")
            return
        time.sleep(0.5)


@contextlib.contextmanager
def fleet_run(where: Path, converged: Path) -> Iterator[dict[str, Any]]:
    """The lab on copies of `converged`, then `make fleet-smoke` from the controller's namespace."""
    started = time.monotonic()
    where.mkdir()
    lab = Lab(where, converged, USER)
    try:
        lab.prepare()
        for name in ("ok-1", "ok-2"):
            lab.add_host(name)
        lab.add_host("drift-1", drift_rich)
        lab.add_host("fail-1", hostile_environment)
        lab.add_host("slow-1", slow_cpu=0.2)
        lab.add_host("cut-1")
        lab.add_host("bare-1", remove_toolkit)
        # A folder name with a space: the Makefile must pass INVENTORY through whole.
        (where / "my lab").mkdir()
        inventory = lab.inventory(where / "my lab" / "hosts.yml", {GHOST: "10.77.250.2"})
        settings = where / "tiny.toml"
        settings.write_text((REPO / "smoke_tests" / "settings.toml").read_text() + TINY_LEVEL)
        out = where / "run"
        TIMINGS["fleet_lab_setup_s"] = round(time.monotonic() - started, 1)
        done, cuts = threading.Event(), []
        watcher = threading.Thread(target=cut_when_running, args=(lab, "cut-1", done, cuts), daemon=True)
        watcher.start()
        argv = [
            *lab.netns_exec(),
            "make",
            "fleet-smoke",
            f"INVENTORY={inventory}",
            f"LEVEL={LEVEL}",
            f"FLEET_ARGS=--settings {settings} --out {out}",
        ]
        # Ansible's SSH sockets and local temporary files stay in the lab's folder.
        env = {
            **os.environ,
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(where / "cp"),
            "ANSIBLE_LOCAL_TEMP": str(where / "ansible-tmp"),
        }
        t0 = time.monotonic()
        run = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=1500, env=env)
        seconds = TIMINGS["fleet_smoke_s"] = round(time.monotonic() - t0, 1)
        done.set()
        (where / "make-fleet-smoke.log").write_text(run.stdout + run.stderr)
        data = json.loads((out / "fleet.json").read_text()) if (out / "fleet.json").is_file() else None
        yield {"run": run, "out": out, "data": data, "lab": lab, "cuts": cuts, "seconds": seconds}
    finally:
        lab.close()


@pytest.fixture(scope="module")
def fleet(cpu_converged: Converged, workdir: Path) -> Iterator[dict[str, Any]]:
    converged_host(cpu_converged)
    for tool in ("ip", "ssh", "ssh-keygen"):
        require_tool(tool)
    proc = subprocess.run(
        ["make", ".cache/ansible-venv/.synced"], cwd=REPO, capture_output=True, text=True, timeout=900
    )
    require(
        proc.returncode == 0, f"the Ansible environment (make .cache/ansible-venv/.synced): {proc.stderr}"
    )
    with fleet_run(workdir / "fleet", cpu_converged.fs.root) as result:
        yield result


@pytest.fixture(scope="module")
def data(fleet: dict[str, Any]) -> dict[str, Any]:
    assert fleet["data"] is not None, (
        f"no fleet.json: {fleet['run'].stdout[-4000:]}\n{fleet['run'].stderr[-2000:]}"
    )
    return fleet["data"]


def test_exit_is_non_zero_and_the_summary_names_every_problem(fleet: dict[str, Any]) -> None:
    run = fleet["run"]
    assert run.returncode != 0, run.stdout[-3000:]
    summary = run.stdout[run.stdout.rfind("FLEET SMOKE TEST") :]
    assert "FLEET SMOKE TEST FAILED" in summary, run.stdout[-4000:]
    for name in ("fail-1", "cut-1", "bare-1", GHOST, "installed.rich", "slow-1", "make provision"):
        assert name in summary, (name, summary)


def test_healthy_hosts_pass_with_complete_results(data: dict[str, Any], fleet: dict[str, Any]) -> None:
    for name in HEALTHY:
        host = data["hosts"][name]
        assert host["verdict"] == "passed", host
        for file in ("report.json", "report.html", "junit.xml"):
            assert (fleet["out"] / host["files"][file]).is_file(), (name, file)
        report = json.loads((fleet["out"] / host["files"]["report.json"]).read_text())
        assert report["verdict"] == "PASSED" and report["level"] == LEVEL
        assert host["checks"]["workloads/workload[moons]"] == "passed"
        assert host["headline"], host
        assert host["gpus"] == {
            "model": None,
            "count": 0,
            "driver": None,
            "cuda_driver": None,
            "reason": report["gpu"]["reason"],
        }


def test_drifted_package_and_its_host_are_named(data: dict[str, Any]) -> None:
    name, version = DRIFTED
    entry = next(d for d in data["drift"] if d["field"] == f"installed.{name}")
    assert entry["values"][version] == ["drift-1"]
    assert entry["odd"] == ["drift-1"]
    assert len(next(iter(entry["values"].values()))) >= 4  # the locked version, on every other host that ran


def test_failing_host_and_check_are_named(data: dict[str, Any]) -> None:
    host = data["hosts"]["fail-1"]
    assert host["verdict"] == "failed" and host["problem"]["kind"] == "checks"
    failed = {c["check"]: c["message"] for c in host["failed_checks"]}
    assert list(failed) == ["system/environment_variables"], failed
    assert HOSTILE in failed["system/environment_variables"]


def test_unreachable_and_cut_off_hosts_are_named_with_ansibles_reason(
    data: dict[str, Any], fleet: dict[str, Any]
) -> None:
    assert fleet["cuts"], "the cut-off host's smoke test was never seen running"
    ghost = data["hosts"][GHOST]
    assert ghost["verdict"] == "unreachable" and ghost["problem"]["kind"] == "unreachable"
    assert "Network is unreachable" in ghost["reason"]
    cut = data["hosts"]["cut-1"]
    assert cut["verdict"] == "unreachable" and cut["problem"]["kind"] == "lost", cut
    assert cut["reason"].startswith("lost during the smoke test: ") and "ssh" in cut["reason"], cut
    # Given up within minutes (ssh keep-alives), not at the smoke test's limit (the level's 900 s + 600 s).
    assert fleet["seconds"] < 900, fleet["seconds"]


def test_missing_toolkit_says_run_make_provision(data: dict[str, Any], fleet: dict[str, Any]) -> None:
    bare = data["hosts"]["bare-1"]
    assert bare["verdict"] == "failed" and bare["problem"]["kind"] == "not_installed"
    assert bare["problem"]["remedy"] == f"make provision HOSTS={fleet['lab'].hosts['bare-1'].address}"


def test_slow_host_is_an_outlier(data: dict[str, Any]) -> None:
    named = [o for o in data["outliers"] if o["host"] == "slow-1"]
    assert named, data["outliers"]
    assert all(o["value"] != o["median"] and o["worse_by"] > data["outlier_rule"]["tolerance"] for o in named)


def test_exit_code_and_counts_agree(data: dict[str, Any]) -> None:
    assert data["verdict"] == "FAILED"
    assert data["counts"] == {"passed": 4, "failed": 2, "unreachable": 2}


def test_host_folders_are_sanitised_and_inside_the_run(data: dict[str, Any], fleet: dict[str, Any]) -> None:
    hosts_dir = (fleet["out"] / "hosts").resolve()
    folders = [p.name for p in hosts_dir.iterdir()]
    assert len(folders) == len(data["hosts"])
    ghost = data["hosts"][GHOST]["folder"]
    assert ghost.startswith("hosts/_._ghost_host-") and "/" not in ghost.removeprefix("hosts/")
    for host in data["hosts"].values():
        assert (fleet["out"] / host["folder"]).resolve().parent == hosts_dir


def test_smoke_test_ran_as_the_workstation_user_and_left_nothing(fleet: dict[str, Any]) -> None:
    lab: Lab = fleet["lab"]
    host = lab.hosts["ok-1"]
    record = json.loads((fleet["out"] / "hosts" / "ok-1" / "host.json").read_text())
    uid = chroot(host.root, f"id -u {USER}").stdout.strip()
    assert record["uid"] == uid != "0"
    # The overlay's upper folder is everything that changed on the host since the lab made it.
    changed = sorted(str(p.relative_to(host.upper)) for p in host.upper.rglob("*"))
    expected = ("home", "tmp", "run", "etc/ssh", "proc")  # the run's user files; the lab's own sshd and keys
    elsewhere = [
        p
        for p in changed
        if not any(p == e or p.startswith(f"{e}/") or e.startswith(f"{p}/") for e in expected)
    ]
    assert elsewhere == [], elsewhere
    assert not glob.glob(str(host.root / "tmp" / "keras-workstation-fleet.*")), (
        "the run's folder was left there"
    )


def test_junit_has_a_case_per_host_and_check(data: dict[str, Any], fleet: dict[str, Any]) -> None:
    suite = ET.parse(fleet["out"] / "junit.xml").getroot().find("testsuite")
    cases = {(c.get("classname"), c.get("name")): c for c in suite.iter("testcase")}
    assert {h for h, n in cases if n == "host"} == set(data["hosts"])
    assert cases[("fail-1", "system/environment_variables")].find("failure") is not None
    assert cases[("cut-1", "host")].find("error") is not None
    assert cases[("ok-1", "workloads/workload[moons]")].find("failure") is None
    assert int(suite.get("tests")) == len(cases)


class _Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.table, self.rows, self.links = None, {}, []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.table = dict(attrs).get("id")
        elif tag == "tr" and self.table:
            self.rows[self.table] = self.rows.get(self.table, 0) + 1
        elif tag == "a":
            self.links.append(dict(attrs)["href"])


def test_fleet_html_has_a_row_per_host_and_links_that_resolve(
    data: dict[str, Any], fleet: dict[str, Any]
) -> None:
    page = _Rows()
    page.feed((fleet["out"] / "fleet.html").read_text())
    assert page.rows["hosts"] == len(data["hosts"]) + 1  # with the header row
    assert page.rows["outliers"] >= 2 and page.rows["drift"] >= 3 and page.rows["not-run"] == 4
    for href in page.links:
        assert (fleet["out"] / href).is_file(), href


def test_baseline_comparison_names_what_changed(
    data: dict[str, Any], fleet: dict[str, Any], tmp_path: Path
) -> None:
    """The run again as a report, against a baseline where ok-1 was faster and fail-1 passed."""
    old = json.loads(json.dumps(data))
    old["hosts"]["fail-1"]["verdict"] = "passed"
    old["hosts"]["fail-1"]["checks"]["system/environment_variables"] = "passed"
    _, figures = next(iter(old["hosts"]["ok-1"]["figures"].items()))
    figure, fig = next((n, f) for n, f in figures.items() if f["better"] == "higher")
    fig["value"] *= 2
    old["hosts"]["ok-1"]["fingerprint"]["installed"]["rich"] = "13.0.0"
    baseline = tmp_path / "old" / "fleet.json"
    baseline.parent.mkdir()
    baseline.write_text(json.dumps(old))
    proc = subprocess.run(
        [
            str(REPO / ".cache/ansible-venv/bin/python"),
            "-m",
            "fleet",
            "report",
            str(fleet["out"]),
            "--baseline",
            str(baseline),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    comparison = json.loads((fleet["out"] / "fleet.json").read_text())["comparison"]
    assert comparison["hosts"]["fail-1"]["verdict"] == {"was": "passed", "now": "failed"}
    assert any(
        r["check"] == "system/environment_variables" for r in comparison["hosts"]["fail-1"]["regressions"]
    )
    assert any(r.get("figure") == figure for r in comparison["hosts"]["ok-1"]["regressions"]), comparison
    assert "installed.rich" in comparison["hosts"]["ok-1"]["fingerprint_changed"]
    assert "fail-1: passed -> failed" in proc.stdout
