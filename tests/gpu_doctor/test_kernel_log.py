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
    events = kernel_log.xid_events(lines)
    assert [(e["pci_bus_id"], e["code"], e["severity"]) for e in events] == [
        ("0000:61:00.0", 119, "broken"),
        ("0000:01:00.0", 13, "warn"),
    ]
    assert kernel_log.for_gpu(events, "0000:61:00.0")[0]["text"].startswith("pid=1346198")
    assert "GSP" in kernel_log.summary(events[:1])


def test_kmsg_records_are_read_to_their_end(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "kmsg").write_text(
        "6,1,100,-;NVRM: Xid (PCI:0000:01:00): 79, GPU has fallen off the bus.\n"
    )
    lines = Boundary(root=tmp_path).kernel_log(1 << 20)
    assert lines == ["NVRM: Xid (PCI:0000:01:00): 79, GPU has fallen off the bus."]
    assert Boundary(root=tmp_path / "nowhere").kernel_log(1 << 20) is None  # unreadable: None, not []


def test_a_fifo_at_dev_kmsg_never_blocks(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    os.mkfifo(tmp_path / "dev" / "kmsg")
    answer: list = []
    reader = threading.Thread(target=lambda: answer.append(Boundary(root=tmp_path).kernel_log(1 << 20)))
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive() and answer == [[]]
