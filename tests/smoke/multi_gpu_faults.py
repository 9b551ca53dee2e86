"""pytest plugin for the smoke checks: negative controls for the multi-GPU measuring process, from
MULTI_GPU_FAULT (comma-separated): "slow:DEVICE:FACTOR" (that device's timed windows read FACTOR times longer:
at the measurement boundary), "wrong_all_reduce:DEVICE" (one wrong element in that device's all-reduce
result), "duplicate_shard" (in data-parallel training, device 1 gets device 0's data). Loaded into the check
process with PYTEST_ADDOPTS="-p tests.smoke.multi_gpu_faults"; the checks say a test hook is on.
"""

from __future__ import annotations

import os

from smoke_tests.multi_gpu import child

child.FAULTS[:] = [f for f in os.environ.get("MULTI_GPU_FAULT", "").split(",") if f]
