"""The kernel log's Xid errors (gpu_doctor.kernel_log) and how the doctor reads the log (Boundary.kernel_log):
never blocking, whatever stands at /dev/kmsg."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from gpu_doctor import kernel_log
from gpu_doctor.system import Boundary


def test_xid_lines_are_read_per_gpu_with_their_meaning() -> None:
    lines = [
        "NVRM: loading NVIDIA UNIX Open Kernel Module for x86_64  570.133.20",
        "NVRM: Xid (PCI:0000:61:00): 119, pid=1346198, name=nvidia-smi, Timeout waiting for RPC from GSP!",
        "NVRM: Xid (PCI:0000:01:00): 13, pid=4242, name=python3, Graphics Exception: ESR 0x50",
    ]
    lines[1] = "[ 3600.500000] " + lines[1]  # as dmesg and kern.log print them
    events = kernel_log.xid_events(lines, uptime_s=3700.5)
    assert [(e["pci_bus_id"], e["code"], e["severity"], e["age_s"]) for e in events] == [
        ("0000:61:00.0", 119, "broken", 100),
        ("0000:01:00.0", 13, "warn", None),
    ]
    assert kernel_log.for_gpu(events, "0000:61:00.0")[0]["text"].startswith("pid=1346198")
    assert "GSP" in kernel_log.summary(events[:1])


def test_kmsg_records_are_read_to_their_end(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "kmsg").write_text(
        "6,1,100,-;NVRM: Xid (PCI:0000:01:00): 79, GPU has fallen off the bus.\n"
    )
    lines = Boundary(root=tmp_path).kernel_log(1 << 20)
    assert lines == ["[0.000100] NVRM: Xid (PCI:0000:01:00): 79, GPU has fallen off the bus."]
    assert Boundary(root=tmp_path / "nowhere").kernel_log(1 << 20) is None  # unreadable: None, not []


def test_a_fifo_at_dev_kmsg_never_blocks(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    os.mkfifo(tmp_path / "dev" / "kmsg")
    answer: list = []
    reader = threading.Thread(target=lambda: answer.append(Boundary(root=tmp_path).kernel_log(1 << 20)))
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive() and answer == [[]]


def test_an_old_xid_is_a_warning_a_recent_one_a_fault(tmp_path: Path, capsys) -> None:
    """A healthy machine must not stay BROKEN until its next reboot for an Xid a reset cleared long ago."""
    from gpu_doctor.cli import main
    from tests.gpu_doctor.staging import Machine

    m = Machine.healthy_h100(tmp_path)
    line = "NVRM: Xid (PCI:0000:01:00): 94, pid=1234, name=python3, Contained ECC error"
    m.kernel_log(line, at_s=100.0, uptime_s=100.0 + 6 * 3600)
    assert main(["--no-compute"], boundary=m.boundary()) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "verdict: OK (warnings: health)" in out and "the last 6.0 h ago; if the GPU was reset since" in out
    m.kernel_log(line, at_s=100.0, uptime_s=160.0)
    assert main(["--no-compute"], boundary=m.boundary()) == 1
    assert "BROKEN at the health layer" in capsys.readouterr().out
