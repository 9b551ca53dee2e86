"""The GPU doctor: one home for keras-workstation's GPU facts and their layered diagnosis.

hardware -> kernel module -> device nodes -> NVML -> CUDA driver -> CUDA libraries -> memory -> framework ->
compute -> health, bottom-up, stopping at the first broken layer with its cause and the command to run.
The layers up to the CUDA libraries need only the standard library and nvidia-ml-py; only the framework and
compute layers import TensorFlow, JAX or PyTorch, and only when asked. The rules live in rules.toml.
"""

from gpu_doctor.diagnose import diagnose
from gpu_doctor.model import Diagnosis, Layer
from gpu_doctor.system import Boundary

__all__ = ["Boundary", "Diagnosis", "Layer", "diagnose"]
