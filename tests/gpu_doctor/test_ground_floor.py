"""gpu_doctor is the ground floor: it imports nothing of the packages above it (workloads, smoke_tests, fleet,
benchmarks), so the doctor and its facts stand without them; and the exit codes every command shares live in
gpu_doctor/exit_codes.py, where what cannot import them (Ansible's tasks, rules.py run as a script) agrees."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import yaml

from gpu_doctor import exit_codes
from tests.conftest import REPO

ABOVE = {"workloads", "smoke_tests", "fleet", "benchmarks", "tests"}
SKIPPED = {"__main__", "preload_hook"}  # runs the CLI on import; installed as its own top-level module


def imported(source: str, parts: int = 1) -> set[str]:
    """The packages a module imports, at its top or inside functions, by statement or by name: their first
    `parts` names (1: `workloads`; 2: `workloads.harness`)."""

    def head(name: str) -> str:
        return ".".join(name.split(".")[:parts])

    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {head(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(head(node.module))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module",
            "__import__",
        ):
            found |= {head(a.value) for a in node.args[:1] if isinstance(a, ast.Constant)}
    return found


def loaded_along(modules: list[str], packages: set[str]) -> list[str]:
    """The modules of `packages` (`workloads`, `workloads.harness`) that importing `modules` in a fresh
    interpreter brings along."""
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"wanted = {sorted(packages)!r}\n"
        "print(sorted(m for m in sys.modules if any(m == p or m.startswith(p + '.') for p in wanted)))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return ast.literal_eval(proc.stdout.strip())


def test_gpu_doctor_imports_nothing_above_it() -> None:
    sources = sorted((REPO / "gpu_doctor").rglob("*.py"))
    above = {str(p.relative_to(REPO)): sorted(imported(p.read_text()) & ABOVE) for p in sources}
    assert len(sources) > 20 and not {path: names for path, names in above.items() if names}


def test_the_scan_sees_every_way_of_importing() -> None:
    """Negative control: each form of import is seen."""
    source = (
        "import fleet.cli\nfrom workloads.errors import X\ndef f():\n    from smoke_tests import runner\n"
        "importlib.import_module('benchmarks.calibrate')\nfrom . import sibling\n"
    )
    assert imported(source) & ABOVE == {"fleet", "workloads", "smoke_tests", "benchmarks"}


def test_every_gpu_doctor_module_loads_nothing_above_it() -> None:
    """Each module imported in a fresh interpreter: none of the packages above it comes along."""
    modules = sorted(
        f"gpu_doctor.{p.stem}" for p in (REPO / "gpu_doctor").glob("*.py") if p.stem not in SKIPPED
    )
    assert loaded_along(modules, ABOVE) == []


def test_the_exit_codes_are_one_set() -> None:
    """The workloads' errors end with the shared codes; the codes are distinct."""
    from workloads import errors

    codes = {name: value for name, value in vars(exit_codes).items() if name.startswith("EXIT_")}
    assert len(set(codes.values())) == len(codes) == 6
    assert errors.InputError.exit_code == exit_codes.EXIT_BAD_INPUT
    assert errors.NoSpaceError.exit_code == exit_codes.EXIT_NO_SPACE
    assert errors.DivergedError.exit_code == exit_codes.EXIT_DIVERGED
    assert errors.os_error_exit(OSError(28, "No space left on device")) == exit_codes.EXIT_NO_SPACE


def test_ansible_reads_the_doctors_exit_codes_as_the_doctor_means_them() -> None:
    """fleet_smoke runs the doctor (`python -m smoke_tests doctor`) and fails a host on any code but the
    doctor's verdicts (healthy, a broken layer): the numbers it types are exit_codes.py's."""
    tasks = yaml.safe_load((REPO / "ansible/roles/fleet_smoke/tasks/main.yml").read_text())
    blocks = [t for task in tasks for t in task.get("block", [task])]
    doctor = next(t for t in blocks if t.get("register") == "fleet_smoke_doctor")
    assert doctor["failed_when"] == (
        f"fleet_smoke_doctor.rc not in [{exit_codes.EXIT_OK}, {exit_codes.EXIT_THRESHOLD_FAILED}]"
    )


def test_rules_py_as_a_script_exits_with_the_shared_codes(tmp_path: Path) -> None:
    """Run isolated (-I), as the Makefile and Ansible run it, it loads exit_codes.py by its path."""
    script = str(REPO / "gpu_doctor" / "rules.py")
    ok = subprocess.run(
        ["/usr/bin/python3", "-I", script, "extras"], capture_output=True, text=True, check=False
    )
    bad = subprocess.run(
        ["/usr/bin/python3", "-I", script, "preflight", "--lock", str(tmp_path / "none"),
         "--driver-branch", "580"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (ok.returncode, bad.returncode) == (exit_codes.EXIT_OK, exit_codes.EXIT_BAD_INPUT), bad.stderr
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
