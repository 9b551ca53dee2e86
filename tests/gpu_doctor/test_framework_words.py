"""The framework's words, always: TensorFlow's W-level lines carry its reasons ("Cannot dlopen some GPU
libraries", "Can't find libdevice directory"), and TF_CPP_MIN_LOG_LEVEL=2 (what gpu_doctor/cli.py and the
smoke runner used to set) drops them. Checked here against the real TensorFlow 2.21 of the environment, so
that the stand-in TensorFlow of the staged machines (tests/gpu_doctor/fake_frameworks) follows the same
rule rather than printing whatever the level; then the doctor's child process, with the real TensorFlow,
keeps its words."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpu_doctor.build import installed_build
from gpu_doctor.context import Context
from gpu_doctor.framework import framework_layer, words
from gpu_doctor.system import Boundary
from tests.conftest import REPO, require
from tests.gpu_doctor.staging import FAKE_FRAMEWORKS

HAS_TF = importlib.util.find_spec("tensorflow") is not None
# A W-level line any TensorFlow prints, GPU or not: an op that fails logs "OP_REQUIRES failed at ..." at W.
REAL = "import tensorflow as tf\ntry:\n    tf.io.read_file('/nonexistent/kw')\nexcept Exception:\n    pass\n"
FAKE = (
    "import kw_fake_framework as f\n"
    "f.log(['W0000 00:00:1.0  1 op_kernel.cc:1858] OP_REQUIRES failed at whole_file_read_ops.cc:117'])\n"
)


def _stderr(code: str, level: str, path: str = "") -> str:
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": level,
        "PYTHONPATH": os.pathsep.join(filter(None, [path, str(REPO)])),
    }
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stderr


@pytest.mark.parametrize(("level", "shown"), [("1", True), ("2", False)])
def test_real_tensorflow_drops_w_lines_at_level_2_and_so_does_the_stand_in(level: str, shown: bool) -> None:
    require(HAS_TF, "TensorFlow 2.21 (make setup installs it from uv.lock)")
    assert ("OP_REQUIRES failed" in _stderr(REAL, level)) is shown
    assert ("OP_REQUIRES failed" in _stderr(FAKE, level, str(FAKE_FRAMEWORKS))) is shown


def test_the_doctors_child_keeps_the_real_frameworks_words(tmp_path: Path) -> None:
    """On this machine (no GPU) the real TensorFlow lists none; the framework layer quotes its reason."""
    require(HAS_TF, "TensorFlow 2.21 (make setup installs it from uv.lock)")
    if Path("/dev/nvidiactl").exists():
        pytest.skip("an NVIDIA driver is here: TensorFlow may list a GPU, so there is no reason to quote")
    b = Boundary(env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})  # what the user's shell may hold
    ctx = Context(
        b, "tensorflow", installed_build("tensorflow", b.metadata), ask_framework=True, ask_compute=False
    )
    layer = framework_layer(ctx)
    assert layer.status == "BROKEN" and "tensorflow lists no GPU" in layer.cause, layer
    said = layer.cause.split("It says: ", 1)[1]
    assert "cuInit" in said or "cuda drivers" in said, (
        said
    )  # TensorFlow's own line, whatever the shell's level
    assert said.split(" (points at")[0] in "\n".join(ctx.child["stderr"])


def test_words_prefer_the_line_a_rule_knows() -> None:
    lines = [
        "I0000 00:00:1.0  1 cuda_dnn.cc:529] Loaded cuDNN version 90800",
        "W0000 00:00:1.0  1 nvptx_helper.cc:56] Can't find libdevice directory ${CUDA_DIR}/nvvm/libdevice.",
        "E0000 00:00:1.0  1 executor.cc:1] something else failed",
        '  File "/x.py", line 1 in <module>',
    ]
    assert words(lines).startswith("W0000") and words(lines[2:]).startswith("E0000") and words([]) is None
