"""A stand-in for the multi-GPU measuring process (smoke_tests/multi_gpu/measure.py), to test what the checks
make of its results. As a pytest plugin (PYTEST_ADDOPTS="-p tests.smoke.fake_measure") it makes the checks
start this module instead; as that process it writes 4 simulated devices, then for each part the file
$FAKE_MEASURE_FROM/<part>.json holds, and kills itself with SIGSEGV before the part $FAKE_MEASURE_CRASH
names (a crash in a CUDA library)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
from pathlib import Path

from smoke_tests.multi_gpu import child


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path)
    parser.add_argument("--parts")
    args, _ = parser.parse_known_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report = [{"id": i, "platform": "cpu", "kind": "cpu", "pci_bus_id": None} for i in range(4)]
    (args.out / "devices.json").write_text(json.dumps({"devices": report}))
    for part in args.parts.split(","):
        if part == os.environ.get("FAKE_MEASURE_CRASH"):
            os.kill(os.getpid(), signal.SIGSEGV)
        shutil.copy(Path(os.environ["FAKE_MEASURE_FROM"]) / f"{part}.json", args.out / f"{part}.json")


if __name__ == "__main__":
    main()
    sys.exit(0)
else:
    child.MEASURE = "tests.smoke.fake_measure"
