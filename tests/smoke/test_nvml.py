"""gpu_doctor's NVML layer against fakes of the nvidia-ml-py functions (no GPU needed)."""

from __future__ import annotations

import pynvml
import pytest

from gpu_doctor import nvml
from tests.smoke.fake_nvml import FakeNvml, bus_id, nvml_error


def test_probe_reports_every_field_of_a_healthy_gpu() -> None:
    info = nvml.probe(FakeNvml())
    assert info["available"] and info["reason"] is None
    assert info["driver_version"] == "550.54.15" and info["cuda_driver_version"] == "12.4"
    gpu = info["gpus"][0]
    assert gpu["name"] == "NVIDIA H100 80GB HBM3"  # bytes from older bindings are decoded
    assert gpu["pci_bus_id"] == bus_id(0)  # nvmlPciInfo_t.busId (bytes), decoded into sysfs form
    assert gpu["compute_capability"] == "9.0"
    assert gpu["memory_total_mib"] == 80 * 1024
    assert gpu["pcie"] == {
        "gen_current": 5,
        "gen_max": 5,
        "gen_gpu_max": 5,
        "width_current": 16,
        "width_max": 16,
    }
    assert gpu["power_w"] == 71.5 and gpu["power_limit_w"] == 700.0
    assert gpu["remapped_rows"] == {"correctable": 0, "uncorrectable": 0, "pending": 0, "failure": 0}
    assert gpu["retired_pages"] == {"double_bit": 0, "multiple_single_bit": 0}
    assert gpu["mig_mode"] == {"current": 0, "pending": 0} and gpu["persistence_mode"] == 1
    assert gpu["clock_events"] == []
    assert nvml.health_problems(gpu) == [] and nvml.health_warnings(gpu) == []
    assert gpu["processes"] == [] and gpu["memory_free_mib"] == 79 * 1024


def test_not_supported_queries_become_na_not_a_crash() -> None:
    unsupported = (
        "nvmlDeviceGetEccMode",
        "nvmlDeviceGetTotalEccErrors",
        "nvmlDeviceGetRemappedRows",
        "nvmlDeviceGetRetiredPages",
        "nvmlDeviceGetMigMode",
        "nvmlDeviceGetPowerUsage",
        "nvmlDeviceGetCurrPcieLinkWidth",
        "nvmlDeviceGetTemperature",
    )
    info = nvml.probe(FakeNvml(unsupported=unsupported, nvmlDeviceGetName="NVIDIA GeForce RTX 4090"))
    gpu = info["gpus"][0]
    assert info["available"]
    assert gpu["ecc_mode"] == {"current": "n/a", "pending": "n/a"}
    assert gpu["ecc_uncorrected_volatile"] == gpu["remapped_rows"] == gpu["power_w"] == "n/a"
    assert gpu["retired_pages"] == {"double_bit": "n/a", "multiple_single_bit": "n/a"}
    assert gpu["pcie"]["width_current"] == "n/a" and gpu["temperature_c"] == "n/a"
    assert nvml.health_problems(gpu) == []  # n/a is not a fault


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH, "driver/library version mismatch"),
        (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "libnvidia-ml.so.1 is not installed"),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "kernel driver is not loaded"),
        (pynvml.NVML_ERROR_NO_PERMISSION, "no permission"),
        (pynvml.NVML_ERROR_UNKNOWN, "NVML failed to start: Unknown Error"),
        (pynvml.NVML_ERROR_GPU_IS_LOST, "fell off the bus"),
    ],
)
def test_init_failures_say_why(code: int, words: str) -> None:
    info = nvml.probe(FakeNvml(init_error=code))
    assert not info["available"] and info["gpus"] == []
    assert words in info["reason"] and info["remedy"]


def test_nvml_without_devices_is_no_gpu() -> None:
    fake = FakeNvml(gpus=0)
    info = nvml.probe(fake)
    assert not info["available"] and "no GPU" in info["reason"]
    assert fake.calls[-1] == "nvmlShutdown"


def test_real_library_on_this_machine_gives_a_reason_not_a_crash() -> None:
    info = nvml.probe()  # the real nvidia-ml-py: on a machine without a driver, a reason
    assert info["available"] or info["reason"]


def test_faults_fail_health_and_link_downgrade_warns() -> None:
    info = nvml.probe(
        FakeNvml(
            nvmlDeviceGetTotalEccErrors=3,
            nvmlDeviceGetRemappedRows=(0, 2, 1, 0),
            nvmlDeviceGetRetiredPages=[0x1000],
            nvmlDeviceGetCurrPcieLinkWidth=8,
            nvmlDeviceGetMigMode=[1, 1],
        )
    )
    gpu = info["gpus"][0]
    problems = " | ".join(p for p, _ in nvml.health_problems(gpu))
    assert "3 uncorrected ECC errors" in problems
    assert "row remapping pending" in problems
    assert "1 pages retired" in problems
    warnings = " | ".join(w for w, _ in nvml.health_warnings(gpu))
    assert "x8 of x16" in warnings and "MIG is enabled" in warnings


def test_other_nvml_errors_are_reported_as_errors() -> None:
    info = nvml.probe(FakeNvml(nvmlDeviceGetTemperature=nvml_error(pynvml.NVML_ERROR_GPU_IS_LOST)))
    gpu = info["gpus"][0]
    assert gpu["temperature_c"].startswith("error:")
    assert any("temperature_c" in p for p, _ in nvml.health_problems(gpu))


def test_a_gpu_lost_while_opening_it_is_a_fact_not_a_crash() -> None:
    info = nvml.probe(FakeNvml(handle_error=pynvml.NVML_ERROR_GPU_IS_LOST))
    gpu = info["gpus"][0]
    assert gpu["error_name"] == "NVMLError_GpuIsLost" and gpu["name"] == "n/a"


def test_clock_event_bits_are_decoded() -> None:
    mask = pynvml.nvmlClocksEventReasonSwPowerCap | pynvml.nvmlClocksEventReasonHwThermalSlowdown
    assert nvml.decode_clock_events(mask) == ["sw_power_cap", "hw_thermal_slowdown"]
    assert nvml.decode_clock_events("n/a") == "n/a"
    # The table matches the library's constants.
    assert (
        nvml.CLOCK_EVENT_REASONS["hw_power_brake_slowdown"]
        == pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown
    )
