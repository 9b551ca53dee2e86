"""The GPU doctor: one home for keras-workstation's GPU facts and their layered diagnosis.

hardware -> kernel module -> device nodes -> NVML -> health -> CUDA driver -> CUDA libraries -> memory ->
framework -> compute -> containers, bottom-up, stopping at the first broken layer with its cause and the
command to run (a health fault does not stop the layers above, and it stays the verdict: the first cause
wins). Every driver call has a time limit (bounded.py); CUDA's devices are matched to NVML's by PCI bus id
(devices.py). The layers up to the CUDA libraries need only the standard library and nvidia-ml-py; only the
framework and compute layers use TensorFlow, JAX or PyTorch, only when asked, and only in a child process
(child.py). The rules live in rules.toml, each with its source.
"""

from gpu_doctor.diagnose import diagnose
from gpu_doctor.model import Diagnosis, Layer
from gpu_doctor.system import Boundary

__all__ = ["Boundary", "Diagnosis", "Layer", "diagnose"]
