"""Version drift: every fingerprint field that differs, with which hosts hold which value."""

from __future__ import annotations

import json

from fleet.drift import find_drift

from .staging import fingerprint_of


def fields(drift: list[dict]) -> dict[str, dict]:
    return {d["field"]: d for d in drift}


def test_one_drifted_package_is_named_with_its_host() -> None:
    fleet = {f"ws{i}": fingerprint_of() for i in range(4)} | {
        "ws9": fingerprint_of(**{"installed.rich": "14.0.0"})
    }
    drift = fields(find_drift(fleet))
    assert list(drift) == ["installed.rich"]
    assert drift["installed.rich"]["values"] == {"15.0.0": ["ws0", "ws1", "ws2", "ws3"], "14.0.0": ["ws9"]}
    assert drift["installed.rich"]["odd"] == ["ws9"]


def test_every_kind_of_field_is_compared() -> None:
    """Driver, CUDA, cuDNN, kernel, OS, Python, framework, lock hash, and a field no one listed."""
    new = fingerprint_of(
        **{
            "gpus": [{"index": 0, "name": "NVIDIA H100", "uuid": "GPU-9", "driver": "590.1"}],
            "build.cuda_version": "12.8",
            "build.cudnn_version": "9.8",
            "kernel": "6.8.0",
            "os": "Ubuntu 24.04 LTS",
            "python": "3.12.3",
            "packages.tensorflow": "2.22.0",
            "lock_sha256": "b" * 64,
            "brand_new": {"field": 1},
        }
    )
    drift = fields(find_drift({"old1": fingerprint_of(), "old2": fingerprint_of(), "new": new}))
    assert set(drift) == {
        "gpus[].driver",
        "build.cuda_version",
        "build.cudnn_version",
        "kernel",
        "os",
        "python",
        "packages.tensorflow",
        "lock_sha256",
        "brand_new.field",
    }
    assert drift["brand_new.field"]["values"] == {"(absent)": ["old1", "old2"], "1": ["new"]}
    # installed.tensorflow says the same as packages.tensorflow: named once
    assert all(d["odd"] == ["new"] for d in drift.values())


def test_what_identifies_a_machine_is_not_drift() -> None:
    a = fingerprint_of(**{"cpu.memory_gib": 64.0, "cpu.cores": 32})
    b = fingerprint_of(**{"gpus": [{"index": 0, "name": "NVIDIA H100", "uuid": "GPU-2", "driver": "580.95"}]})
    assert find_drift({"a": a, "b": b, "c": fingerprint_of()}) == []


def test_gpu_lists_compare_as_sets_so_counts_do_not_drift() -> None:
    eight = fingerprint_of(
        gpus=[{"index": i, "name": "NVIDIA H100", "uuid": f"G{i}", "driver": "580.95"} for i in range(8)]
    )
    assert find_drift({"one": fingerprint_of(), "eight": eight}) == []
    mixed = fingerprint_of(
        gpus=[
            {"index": 0, "name": "NVIDIA H100", "driver": "580.95"},
            {"index": 1, "name": "NVIDIA H100", "driver": "575.1"},
        ]
    )
    drift = fields(find_drift({"one": fingerprint_of(), "mixed": mixed}))
    assert drift["gpus[].driver"]["values"] == {"575.1, 580.95": ["mixed"], "580.95": ["one"]}


def test_a_tie_names_every_host_as_odd_and_hosts_without_a_fingerprint_are_left_out() -> None:
    drift = find_drift({"a": fingerprint_of(python="3.11"), "b": fingerprint_of(python="3.12"), "gone": {}})
    assert drift == [
        {"field": "python", "part": "python", "values": {"3.11": ["a"], "3.12": ["b"]}, "odd": ["a", "b"]}
    ]


def test_one_value_everywhere_is_no_drift() -> None:
    assert find_drift({f"ws{i}": fingerprint_of() for i in range(5)}) == []


def test_this_environments_fingerprint_lets_drift_name_any_installed_package() -> None:
    """The real fingerprint (workloads.harness.fingerprint) lists the OS, the kernel and every installed
    distribution, so a package outside the headline list (here: rich) is named when it differs."""
    from workloads.harness.fingerprint import environment_fingerprint

    here = environment_fingerprint()
    assert here["os"] and here["kernel"] and here["installed"]["keras"] == here["packages"]["keras"]
    assert "rich" in here["installed"] and "rich" not in here["packages"]
    other = json.loads(json.dumps(here))
    other["installed"]["rich"] = "0.0.1"
    drift = find_drift({"here": here, "there": other, "also-here": json.loads(json.dumps(here))})
    assert [(d["field"], d["odd"]) for d in drift] == [("installed.rich", ["there"])]
