"""The GPU rules (gpu_doctor/rules.toml through rules.py): driver vs CUDA, PTX, compute capabilities, the
environment, and the stdlib-only script Ansible's preflight runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gpu_doctor import rules

ROOT = Path(__file__).resolve().parents[2]
TF_ARCHS = ["sm_60", "sm_70", "sm_80", "sm_89", "compute_90"]  # tf.sysconfig.get_build_info() of TF 2.21


def test_tensorflow_2_21_build_facts() -> None:
    build = rules.framework_rules("tensorflow", "2.21.0")
    assert (build["cuda"], build["cudnn"], build["archs"]) == ("12.5.1", "9", TF_ARCHS)
    assert rules.framework_rules("tensorflow", "1.15.0") == {}


@pytest.mark.parametrize(
    ("driver", "build", "needs_ptx", "ok", "words"),
    [
        ("12.4", "12.5.1", False, True, "minor-version compatibility"),
        ("12.4", "12.5.1", True, False, "does not cover PTX"),  # an H100 with TF 2.21 on a 550 driver
        ("12.5", "12.5.1", True, True, ">="),
        ("12.8", "12.5.1", True, True, ">="),
        ("13.0", "12.5.1", True, True, ">="),
        ("11.8", "12.5.1", False, False, "needs CUDA 12.x"),
        ("n/a", "12.5.1", False, None, "cannot compare"),
    ],
)
def test_driver_against_build(driver: str, build: str, needs_ptx: bool, ok: bool | None, words: str) -> None:
    verdict = rules.driver_verdict(driver, build, needs_ptx)
    assert verdict["ok"] is ok and words in verdict["why"]


@pytest.mark.parametrize(
    ("cc", "how"),
    [
        ("8.0", "native"),
        ("8.6", "native"),
        ("8.9", "native"),
        ("9.0", "ptx"),
        ("12.0", "ptx"),
        ("7.5", "native"),
        ("5.2", None),
        ("3.7", None),
    ],
)
def test_compute_capability(cc: str, how: str | None) -> None:
    # SASS sm_XY runs on the same major with minor >= Y; PTX compute_90 is JIT-compiled for 9.0 and newer.
    assert rules.code_for(cc, TF_ARCHS) == how


def test_an_sm_only_build_cannot_run_a_newer_major() -> None:
    assert rules.code_for("9.0", ["sm_80", "sm_86"]) is None


def test_blackwell_with_tensorflow_is_reported_broken_unless_the_build_has_sm_12x() -> None:
    broken = rules.known_broken("tensorflow", "2.21.0", "12.0", TF_ARCHS)
    assert broken and "#99592" in broken["cause"] and "nvcr.io/nvidia/tensorflow" in broken["remedy"]
    assert rules.known_broken("tensorflow", "2.21.0", "12.0", [*TF_ARCHS, "sm_120"]) is None
    assert rules.known_broken("tensorflow", "2.21.0", "9.0", TF_ARCHS) is None
    assert rules.known_broken("jax", "0.10.2", "12.0", []) is None


@pytest.mark.parametrize(
    ("framework", "version", "cc", "archs", "cuda", "rule"),
    [
        ("tensorflow", "2.21.0", "10.0", TF_ARCHS, "12.5.1", "tensorflow-on-blackwell-datacenter"),
        ("tensorflow", "2.21.0", "10.3", TF_ARCHS, "12.5.1", "tensorflow-on-blackwell-datacenter"),  # B300
        ("tensorflow", "2.21.0", "10.0", [*TF_ARCHS, "sm_100"], "12.8", None),
        ("jax", "0.10.2", "7.0", [], "13", "cuda13-build-on-pre-turing"),  # a V100
        ("jax", "0.10.2", "6.1", [], "13.0", "cuda13-build-on-pre-turing"),  # a GTX 1080
        ("jax", "0.10.2", "7.5", [], "13", None),  # Turing is still in CUDA 13
        ("jax", "0.10.2", "7.0", [], "12", None),  # the CUDA 12 plugin runs on a V100
        ("torch", "2.7.0+cu126", "12.0", [], "12.6", "torch-before-cu128-on-blackwell"),
        ("torch", "2.13.0", "12.0", [], "13.0", None),
        ("torch", "2.7.0+cu126", "9.0", [], "12.6", None),
    ],
)
def test_known_broken_builds_by_gpu_generation_and_build_cuda(
    framework: str, version: str, cc: str, archs: list[str], cuda: str, rule: str | None
) -> None:
    found = rules.known_broken(framework, version, cc, archs, cuda)
    assert (found or {}).get("id") == rule


def test_every_rule_says_where_it_comes_from() -> None:
    """Each rule lives once in rules.toml with its public source (owner/repo#N)."""
    source = r"[\w.-]+/[\w.-]+#\d+"
    for entry in rules.rules()["known_broken"]:
        assert re.search(source, entry["source"]) and entry["id"], entry
    for entry in rules.rules()["framework_errors"]:
        assert "cause" not in entry or re.search(source, entry["source"]), entry
    for code, entry in rules.rules()["xid"]["codes"].items():
        assert entry["severity"] in ("broken", "warn") and entry["meaning"], code
        assert entry["severity"] == "warn" or "{index}" in entry["remedy"] or entry["remedy"], code
    ids = [e["id"] for e in rules.rules()["known_broken"]]
    assert len(ids) == len(set(ids))


def test_the_fault_table_stages_every_known_broken_build() -> None:
    """Each [[known_broken]] rule is staged in tests/gpu_doctor/test_fault_injection.py, citing its source."""
    from tests.gpu_doctor.test_fault_injection import MODES

    cited = " ".join(m.source for m in MODES)
    for entry in rules.rules()["known_broken"]:
        assert entry["source"].split(", ")[0] in cited, entry["id"]


def test_cuda_errors_of_the_fabric_manager_and_of_hmm() -> None:
    fm, hmm = rules.cuda_error(802), rules.cuda_error(3)
    assert fm["name"] == "CUDA_ERROR_SYSTEM_NOT_READY" and "nvidia-fabricmanager" in fm["remedy"]
    assert "uvm_disable_hmm=1" in fm["no_nvswitch_remedy"] and "uvm_disable_hmm=1" in hmm["open_hmm_remedy"]


def test_driver_tables() -> None:
    assert rules.min_driver_for_cuda("12.5.1") == "555.42.02"
    assert rules.min_driver_for_cuda("12.7") == "570.26"  # no 12.7 release: what 12.8 needs
    assert (
        rules.min_driver_for_major("12.9") == "525.60.13"
        and rules.min_driver_for_major("13.0") == "580.65.06"
    )
    assert (
        rules.ptx_isa("12.5.1") == "8.5" and rules.ptx_isa("12.8") == "8.7" and rules.ptx_isa("11.8") is None
    )
    assert rules.cuda_from_int(12040) == "12.4" and rules.cuda_from_int(0) is None


def test_error_tables() -> None:
    assert (
        rules.cuda_error(999)["name"] == "CUDA_ERROR_UNKNOWN"
        and "nvidia_uvm" in rules.cuda_error(999)["remedy"]
    )
    assert "error 12345" in rules.cuda_error(12345)["cause"]
    unknown = rules.nvml_init_error("NVMLError_Unknown", "container")
    assert "daemon-reload" in unknown["cause"]
    assert rules.nvml_init_error("NVMLError_Unknown", "host")["cause"] != unknown["cause"]
    assert (
        rules.blame_for_error("Failed to get convolution algorithm... cuDNN failed to initialize") == "memory"
    )
    assert rules.blame_for_error("Could not load dynamic library 'libcudnn.so.9'") == "cuda_libraries"
    assert rules.blame_for_error("everything is fine") is None


def test_hostile_environment_variables() -> None:
    env = {"CUDA_INJECTION64_PATH": "/x.so", "CUDA_PROFILE": "1", "HOME": "/root"}
    assert rules.hostile_env_vars(env) == ["CUDA_INJECTION64_PATH='/x.so'", "CUDA_PROFILE='1'"]
    assert rules.hides_all_gpus("") and rules.hides_all_gpus("-1") and not rules.hides_all_gpus("0")
    assert not rules.hides_all_gpus(None)


@pytest.mark.parametrize(
    ("branch", "native", "ok", "min_branch"),
    [
        (470, False, False, 555),
        (550, False, False, 555),
        (570, False, True, 555),
        # --native-code: every GPU has sm_ code in the build, the CUDA major is enough (Debian 12's 535).
        (535, True, True, 525),
        (470, True, False, 525),
    ],
)
def test_preflight_script_runs_on_a_bare_python(branch: int, native: bool, ok: bool, min_branch: int) -> None:
    # What Ansible's preflight runs on the controller: no project environment, standard library only (-I).
    proc = subprocess.run(
        [
            sys.executable,
            "-I",
            str(ROOT / "gpu_doctor" / "rules.py"),
            "preflight",
            "--lock",
            str(ROOT / "uv.lock"),
            "--driver-branch",
            str(branch),
            *(["--native-code"] if native else []),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["ok"] is ok and result["min_branch"] == min_branch
    assert result["native_code"] is native and result["min_branch_native"] == 525
    assert result["tensorflow"] and result["cuda_major_minor"] == "12.5"


def test_preflight_script_bad_lock_is_one_line_and_exit_2(tmp_path: Path) -> None:
    script = str(ROOT / "gpu_doctor" / "rules.py")
    proc = subprocess.run(
        [
            sys.executable,
            "-I",
            script,
            "preflight",
            "--lock",
            str(tmp_path / "none.lock"),
            "--driver-branch",
            "570",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
