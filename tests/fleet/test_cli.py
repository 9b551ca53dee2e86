"""`python -m fleet` and `make fleet-smoke`: bad input refused in one line before anything runs, a run folder
of its own, the playbook against hosts reached without a lab (local and unreachable ones), Ctrl-C, and
`python -m fleet report` on a staged folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleet.cli import new_run_dir

from .staging import check, host_record, report, stage_host, stage_run

REPO = Path(__file__).resolve().parents[2]
PYTHON = REPO / ".venv" / "bin" / "python"  # its bin/ holds ansible-playbook and ansible-inventory


def fleet(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PYTHON), "-m", "fleet", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "hosts.ini"
    path.write_text("[lab]\nws1 ansible_host=127.0.0.1 ansible_port=1\n")
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-i", "/no/such/inventory"], "--inventory /no/such/inventory: no such file"),
        (["--level", "huge"], "--level: unknown level 'huge' (choose from quick, full)"),
        (["--settings", "{tmp}/s.toml"], "no level 'quick' with a positive suite_timeout_s"),
        (["--baseline", "{tmp}/s.toml"], "not valid JSON"),
        (["--limit", "nothing-matches"], "no host of {tmp}/hosts.ini matches --limit 'nothing-matches'"),
        (["--forks", "0"], "--forks 0: must be at least 1"),
        (["--out", "{tmp}"], "it exists, and a run's folder is never reused"),
        (["--levels", "x"], "unrecognized arguments: --levels x"),
    ],
)
def test_bad_input_is_refused_in_one_line_before_anything_runs(
    tmp_path: Path, inventory: Path, args: list[str], message: str
) -> None:
    (tmp_path / "s.toml").write_text("[levels.tiny]\nsuite_timeout_s = 5\n")
    argv = ["-i", str(inventory), *(a.format(tmp=tmp_path) for a in args)]
    if args[0] == "-i":
        argv = [a.format(tmp=tmp_path) for a in args]
    proc = fleet(*argv)
    assert proc.returncode == 2, proc
    assert proc.stderr.count("\n") == 1 and message.format(tmp=tmp_path) in proc.stderr, proc.stderr
    assert not (REPO / "reports" / "fleet").exists() or not any(
        (p / "plan.json").is_file() and str(inventory) in (p / "plan.json").read_text()
        for p in (REPO / "reports" / "fleet").iterdir()
    )


def test_an_unreadable_inventory_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "hosts.yml"
    bad.write_text("all: [this is: not: an inventory\n")
    proc = fleet("-i", str(bad))
    assert proc.returncode == 2 and "Ansible could not read it as an inventory" in proc.stderr, proc.stderr


def test_every_run_gets_a_folder_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first, second = new_run_dir(None), new_run_dir(None)
    assert first != second and first.parent == second.parent == (tmp_path / "reports" / "fleet").resolve()
    assert second.name.startswith(first.name) or first.name < second.name


@pytest.mark.parametrize("value", ["/tmp/a b'\"$HOME || touch /tmp/owned", "x$$y"])
def test_make_passes_the_inventory_through_whole(value: str) -> None:
    """Spaces, quotes, `$` and `||` reach `python -m fleet` as they were typed, and run nothing."""
    proc = subprocess.run(
        ["make", "--no-print-directory", "fleet-smoke", f"INVENTORY={value}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert f"fleet: error: --inventory {value}: no such file" in proc.stderr, proc.stderr
    assert not Path("/tmp/owned").exists()


def test_make_without_an_inventory_says_what_it_needs() -> None:
    proc = subprocess.run(
        ["make", "--no-print-directory", "fleet-smoke"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode != 0 and "make fleet-smoke needs INVENTORY=FILE" in proc.stderr


@pytest.mark.ansible
def test_the_playbook_records_unreachable_uninstalled_and_root_hosts(tmp_path: Path) -> None:
    """No lab needed: a host with nothing listening, a local host without the toolkit, and this machine as
    whoever runs the tests (root in CI: refused; another user: the environment check runs)."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {
                        "gone host/..": {"ansible_host": "127.0.0.1", "ansible_port": 1},
                        "bare": {
                            "ansible_connection": "local",
                            "python_env_venv_dir": str(tmp_path / "nothing"),
                        },
                        "me": {"ansible_connection": "local", "python_env_venv_dir": str(REPO / ".venv")},
                    },
                    "vars": {"ansible_python_interpreter": "/usr/bin/python3"},
                }
            }
        )
    )
    out = tmp_path / "run"
    proc = fleet("-i", str(inventory), "-k", "environment_variables", "--out", str(out), timeout=600)
    data = json.loads((out / "fleet.json").read_text())
    assert proc.returncode == 1, proc.stdout[-3000:]
    gone, bare, me = (data["hosts"][h] for h in ("gone host/..", "bare", "me"))
    assert gone["verdict"] == "unreachable" and "Connection refused" in gone["reason"]
    assert gone["folder"].startswith("hosts/gone_host_..-") and (out / gone["folder"] / "host.json").is_file()
    assert (
        bare["problem"]["kind"] == "not_installed"
        and bare["problem"]["remedy"] == "make provision HOSTS=localhost"  # a local connection: this machine
    )
    if os.geteuid() == 0:
        assert me["problem"]["kind"] == "root"
    else:
        assert (
            me["checks"]["system/environment_variables"] == "passed"
            and (out / me["files"]["report.html"]).is_file()
        )
    assert (out / "ansible.log").read_text().count("PLAY RECAP") == 1
    assert "FLEET SMOKE TEST FAILED" in proc.stdout


@pytest.mark.ansible
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP])
def test_a_signal_stops_ansible_and_still_writes_the_report(tmp_path: Path, sig: signal.Signals) -> None:
    """A host whose Python hangs keeps Ansible busy; Ctrl-C (or a closed terminal) ends the run in seconds
    with the report, and nothing is left running."""
    hang = tmp_path / "python-that-hangs"
    hang.write_text("#!/bin/sh\nwhile :; do sleep 1; done\n")
    hang.chmod(0o755)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"[lab]\nstuck ansible_connection=local ansible_python_interpreter={hang}\n")
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [str(PYTHON), "-m", "fleet", "-i", str(inventory), "--out", str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log, deadline = out / "ansible.log", time.monotonic() + 120
    while time.monotonic() < deadline and not (
        log.exists() and "Make the host's folder" in log.read_text(errors="replace")
    ):
        time.sleep(0.2)
    time.sleep(2)  # the next task, on the host, is running (and hangs)
    started = time.monotonic()
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 128 + sig, stderr
    assert time.monotonic() - started < 45
    data = json.loads((out / "fleet.json").read_text())
    assert data["verdict"] == "INTERRUPTED" and data["ansible"]["interrupted"] == sig.name
    assert data["hosts"]["stuck"]["problem"]["kind"] == "no_record"
    assert "FLEET SMOKE TEST INTERRUPTED" in stdout and f"{sig.name} received" in stderr
    assert subprocess.run(["pgrep", "-f", str(hang)], capture_output=True).returncode == 1, (
        "a process was left"
    )


def test_report_again_from_a_staged_folder(tmp_path: Path) -> None:
    run = stage_run(tmp_path / "run", ["a", "b", "c"])
    for name in ("a", "b", "c"):
        stage_host(run, name, report_data=report([check("speed", "m", x=100.0 if name != "c" else 50.0)]))
    proc = fleet("report", str(run))
    assert proc.returncode == 0, proc.stderr
    data = json.loads((run / "fleet.json").read_text())
    assert data["verdict"] == "PASSED" and [o["host"] for o in data["outliers"]] == ["c"]
    assert (run / "fleet.html").is_file() and (run / "junit.xml").is_file()
    assert "c: speed/m x 50 u against a median of 100 (50% worse" in proc.stdout
    stage_host(run, "d", record=host_record("d", {"reach": {"unreachable": True, "msg": "No route to host"}}))
    (run / "plan.json").write_text(
        json.dumps({**json.loads((run / "plan.json").read_text()), "hosts": ["a", "b", "c", "d"]})
    )
    assert fleet("report", str(run)).returncode == 1


def test_report_again_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    proc = fleet("report", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not a fleet run's folder" in proc.stderr


def test_the_fleet_report_imports_no_framework() -> None:
    """It runs in Ansible's environment, which has no TensorFlow, JAX or NumPy."""
    code = (
        "import sys, fleet.cli, fleet.report; bad = {'tensorflow', 'jax', 'torch', 'keras', 'numpy'} & "
        "set(sys.modules); print(sorted(bad)); sys.exit(bool(bad))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.ansible
def test_limit_selects_the_hosts_that_run(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        "[lab]\nws1 ansible_host=127.0.0.1 ansible_port=1\nws2 ansible_host=127.0.0.1 ansible_port=1\n"
        "[other]\nws3 ansible_host=127.0.0.1 ansible_port=1\n"
    )
    out = tmp_path / "run"
    proc = fleet("-i", str(inventory), "--limit", "lab:!ws2", "--out", str(out))
    data = json.loads((out / "fleet.json").read_text())
    assert proc.returncode == 1 and list(data["hosts"]) == ["ws1"] and data["run"]["limit"] == "lab:!ws2"
    assert [p.name for p in (out / "hosts").iterdir()] == ["ws1"]
