"""Every read of /sys, /proc and /dev is bounded in time and size (gpu_doctor/safe_read.py): a FIFO standing
where a sysfs file was, /dev/zero, or a wedged driver whose attribute never answers cannot hang the doctor,
the smoke runner or the fingerprint. A FIFO once made `python -m smoke_tests` deaf to SIGTERM."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gpu_doctor import diagnose, safe_read
from tests.gpu_doctor.staging import H100_PCI_ID, Machine

ROOT = Path(__file__).resolve().parents[2]


def test_a_fifo_is_refused_at_once_without_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "vendor"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(OSError, match="a FIFO, not a regular file") as refused:
        safe_read.read_bytes(fifo)
    assert time.monotonic() - started < 1.5 and refused.value.errno == errno.EINVAL


def test_dev_zero_is_refused_and_a_big_file_is_cut(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="a character device"):
        safe_read.read_bytes("/dev/zero")
    big = tmp_path / "big"
    big.write_bytes(b"x" * 2048)
    with pytest.raises(OSError, match="larger than 1024 bytes"):
        safe_read.read_bytes(big, max_bytes=1024)
    assert safe_read.read_bytes(big, max_bytes=2048) == b"x" * 2048


@pytest.fixture
def wedged(monkeypatch: pytest.MonkeyPatch):
    """Reads of the files named in the returned set never answer (a wedged driver), until the test ends."""
    stuck: set[str] = set()
    release = threading.Event()
    real = safe_read._read

    def read(path: str, max_bytes: int) -> bytes:
        if path in stuck:
            release.wait()
            raise OSError(errno.EIO, "released", path)
        return real(path, max_bytes)

    monkeypatch.setattr(safe_read, "_read", read)
    yield stuck
    release.set()


def test_a_read_that_never_answers_times_out_and_its_folder_is_not_waited_on_again(tmp_path, wedged) -> None:
    for name in ("vendor", "class"):
        (tmp_path / name).write_text("0x10de\n")
    wedged.add(str(tmp_path / "vendor"))
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"no answer within 0\.5 s"):
        safe_read.read_bytes(tmp_path / "vendor", timeout_s=0.5)
    assert time.monotonic() - started < 2
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="did not answer"):
        safe_read.read_bytes(tmp_path / "class")  # the same device: at once, not another time-out
    assert time.monotonic() - started < 0.5


def test_the_diagnosis_says_which_files_did_not_answer(tmp_path, wedged) -> None:
    m = Machine.healthy_h100(tmp_path / "root")
    wedged.add(str(m.path("sys/bus/pci/devices/0000:01:00.0/current_link_speed")))
    started = time.monotonic()
    found = diagnose(m.boundary(), "tensorflow", ask_framework=False, ask_compute=False)
    assert time.monotonic() - started < 10
    hardware = found.layer("hardware")
    assert "did not answer within" in hardware.summary and "current_link_speed" in hardware.summary
    assert "sudo dmesg" in hardware.notes[0]


def staged_gpu_with_fifos(root: Path) -> Path:
    """A GPU with its driver loaded where the link files and the driver's version file are FIFOs."""
    m = Machine(root)
    m.pci_device("0000:01:00.0", "0x10de", "0x030200", H100_PCI_ID, "nvidia")
    m.load_module()
    for rel in ("sys/bus/pci/devices/0000:01:00.0/current_link_speed", "proc/driver/nvidia/version"):
        m.path(rel).unlink(missing_ok=True)
        os.mkfifo(m.path(rel))
    return root


def test_fifos_in_a_staged_sysfs_do_not_hang_the_doctor_or_the_runner(tmp_path: Path) -> None:
    env = {**os.environ, "GPU_DOCTOR_ROOT": str(staged_gpu_with_fifos(tmp_path / "root"))}
    for args in (["doctor"], ["-k", "gpu_found", "--out", str(tmp_path / "report")]):
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "smoke_tests", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
        assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
        assert time.monotonic() - started < 100
    assert (tmp_path / "report" / "report.json").is_file()
