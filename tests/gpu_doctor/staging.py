"""A staged machine for the GPU doctor: only the operating-system boundary is fake.

``Machine`` builds a file tree (sys, proc, dev, lib/modules, the nvidia-* wheels' files) and the fakes of the
other OS accesses: the NVML module (tests/smoke/fake_nvml.py), libcuda (``FakeCuda``: the driver API through
ctypes' byref), the dynamic loader (``FakeLoader``), the installed-package metadata and the framework modules.
``Machine.healthy_h100()`` is a working H100 workstation with TensorFlow 2.21; each fault-injection case
changes one thing and runs the real probing code.
"""

from __future__ import annotations

import json
import os
import re
import threading
import types
from pathlib import Path
from typing import Any

import pynvml

from gpu_doctor import environment, loader, rules
from gpu_doctor.loader import Elf
from gpu_doctor.system import Boundary
from tests.smoke.fake_nvml import FakeNvml
from tests.smoke.fake_nvml import bus_id as fake_bus_id
from tests.smoke.fake_nvml import uuid as fake_uuid

# tensorflow 2.21.0's Requires-Dist for its [and-cuda] extra (importlib.metadata.requires("tensorflow")).
TF_AND_CUDA = [
    'nvidia-cublas-cu12<13.0,>=12.5.3.2; extra == "and-cuda"',
    'nvidia-cuda-cupti-cu12<13.0,>=12.5.82; extra == "and-cuda"',
    'nvidia-cuda-nvcc-cu12<13.0,>=12.5.82; extra == "and-cuda"',
    'nvidia-cuda-nvrtc-cu12<13.0,>=12.5.82; extra == "and-cuda"',
    'nvidia-cuda-runtime-cu12<13.0,>=12.5.82; extra == "and-cuda"',
    'nvidia-cudnn-cu12<10.0,>=9.3.0.75; extra == "and-cuda"',
    'nvidia-cufft-cu12<12.0,>=11.2.3.61; extra == "and-cuda"',
    'nvidia-curand-cu12<11.0,>=10.3.6.82; extra == "and-cuda"',
    'nvidia-cusolver-cu12<12.0,>=11.6.3.83; extra == "and-cuda"',
    'nvidia-cusparse-cu12<13.0,>=12.5.1.3; extra == "and-cuda"',
    'nvidia-nccl-cu12<3.0,>=2.27.7; extra == "and-cuda"',
    'nvidia-nvjitlink-cu12<13.0,>=12.5.82; extra == "and-cuda"',
]
# The wheels uv.lock's gpu extra installs, and the library each one ships (site-packages/nvidia/<part>/lib).
WHEELS = {
    "nvidia-cublas-cu12": ("12.9.1.4", "cublas", ["libcublas.so.12", "libcublasLt.so.12"]),
    "nvidia-cuda-runtime-cu12": ("12.9.79", "cuda_runtime", ["libcudart.so.12"]),
    "nvidia-cudnn-cu12": ("9.28.0.42", "cudnn", ["libcudnn.so.9"]),
    "nvidia-cufft-cu12": ("11.4.1.4", "cufft", ["libcufft.so.11"]),
    "nvidia-curand-cu12": ("10.3.10.19", "curand", ["libcurand.so.10"]),
    "nvidia-cusolver-cu12": ("11.7.5.82", "cusolver", ["libcusolver.so.11"]),
    "nvidia-cusparse-cu12": ("12.5.10.65", "cusparse", ["libcusparse.so.12"]),
    "nvidia-nccl-cu12": ("2.28.3", "nccl", ["libnccl.so.2"]),
    "nvidia-nvjitlink-cu12": ("12.9.86", "nvjitlink", ["libnvJitLink.so.12"]),
}
# The RUNPATH of tensorflow 2.21.0's libtensorflow_framework.so.2 (readelf -d, no duplicates): no cusolver.
TF_RUNPATH = tuple(
    f"$ORIGIN/{up}nvidia/{part}/lib"
    for part in ("nccl", "cuda_cupti", "cublas", "cudnn", "cufft", "cusparse", "cuda_runtime", "nvshmem")
    for up in ("../../", "../")
)
H100_PCI_ID = "2330"
# The NVML answers of a 570 driver (CUDA 12.8): TensorFlow 2.21's compute_90 PTX runs on it.
H100_NVML = {
    "nvmlSystemGetDriverVersion": "570.133.20",
    "nvmlSystemGetNVMLVersion": "12.570.133.20",
    "nvmlSystemGetCudaDriverVersion": 12080,
}


class FakeMetadata:
    """Installed distributions: {name: version}, their Requires-Dist lines and their files."""

    def __init__(self) -> None:
        self.versions: dict[str, str] = {}
        self.requirements: dict[str, list[str]] = {}
        self.file_lists: dict[str, list[Path]] = {}

    def version(self, name: str) -> str | None:
        return self.versions.get(name)

    def requires(self, name: str) -> list[str]:
        return self.requirements.get(name, []) if name in self.versions else []

    def files(self, name: str) -> list[Path]:
        return self.file_lists.get(name, []) if name in self.versions else []


class _Function:
    """A C function as ctypes exposes it: callable, with a settable restype."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.restype = fn, None

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


def fake_library(version: str | None = None, kind: str | None = None) -> types.SimpleNamespace:
    lib = types.SimpleNamespace()
    v = rules.version_tuple(version) if version else None
    if kind == "cudnn" and v:
        lib.cudnnGetVersion = _Function(lambda: v[0] * 10000 + v[1] * 100 + (v[2] if len(v) > 2 else 0))
    if kind == "cudart" and v:

        def runtime(ref: Any) -> int:
            ref._obj.value = v[0] * 1000 + v[1] * 10
            return 0

        lib.cudaRuntimeGetVersion = _Function(runtime)
    return lib


class FakeLoader:
    """dlopen by path: a path registered with a version loads (a fake handle), any other raises OSError."""

    def __init__(self) -> None:
        self.libraries: dict[str, types.SimpleNamespace] = {}
        self.loaded: list[str] = []

    def add(self, path: Path, version: str | None = None) -> None:
        kind = (
            "cudnn"
            if path.name.startswith("libcudnn.")
            else "cudart"
            if path.name.startswith("libcudart.")
            else None
        )
        self.libraries[str(path)] = fake_library(version, kind)

    def __call__(self, path: str) -> types.SimpleNamespace:
        self.loaded.append(path)
        if path not in self.libraries:
            raise OSError(f"{path}: cannot open shared object file: No such file or directory")
        return self.libraries[path]


class FakeCuda:
    """libcuda.so.1: the driver API functions the CUDA layer calls, with ctypes' byref semantics.

    Like the real driver: the devices are ordered fastest first (here: by compute capability, then bus id)
    or by PCI bus id under CUDA_DEVICE_ORDER=PCI_BUS_ID, then CUDA_VISIBLE_DEVICES (read from ``env`` at
    cuInit: indices into that order, GPU UUIDs or unique prefixes; the list stops at the first entry that
    names no device) picks and renumbers them. The PTX JIT accepts PTX up to the ISA of the driver's own
    CUDA (else 222). ``devices``: (name, (major, minor)) or (name, (major, minor), bus id, UUID); by
    default the bus ids and UUIDs of tests/smoke/fake_nvml.py's GPU 0, 1, ... ``hang``: functions that
    block until ``release()``."""

    def __init__(
        self,
        driver: int = 12080,
        devices: list[tuple[Any, ...]] | None = None,
        init_rc: int = 0,
        count: int | None = None,
        hang: tuple[str, ...] = (),
    ) -> None:
        self.driver, self.init_rc, self.count, self.hang = driver, init_rc, count, hang
        listed = devices if devices is not None else [("NVIDIA H100 80GB HBM3", (9, 0))]
        self.devices = [
            (d[0], d[1], d[2] if len(d) > 2 else fake_bus_id(i), d[3] if len(d) > 3 else fake_uuid(i))
            for i, d in enumerate(listed)
        ]
        self.env: dict[str, str] = {}
        self.visible = list(self.devices)
        self.jit: list[tuple[int, str]] = []  # (ordinal, PTX) of each JIT
        self.released = threading.Event()

    def _wait_if_hung(self, name: str) -> None:
        if name in self.hang:
            self.released.wait(3600)

    def release(self) -> None:
        self.released.set()

    def cuInit(self, flags: int) -> int:
        self._wait_if_hung("cuInit")
        ordered = sorted(self.devices, key=lambda d: d[2])
        if self.env.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
            ordered = sorted(ordered, key=lambda d: tuple(-x for x in d[1]))  # "fastest" first, stable by bus
        value = self.env.get("CUDA_VISIBLE_DEVICES")
        if value is None:
            self.visible = ordered
        else:
            self.visible = []
            for entry in (e.strip() for e in value.split(",")):
                hits = [d for d in ordered if entry.upper().startswith("GPU-") and d[3].startswith(entry)]
                pick = ordered[int(entry)] if entry.isdigit() and int(entry) < len(ordered) else (
                    hits[0] if len(hits) == 1 else None)  # fmt: skip
                if pick is None or pick in self.visible:
                    break
                self.visible.append(pick)
        if self.init_rc == 0 and not self.visible:
            return 100  # CUDA_ERROR_NO_DEVICE
        return self.init_rc

    def cuDriverGetVersion(self, ref: Any) -> int:
        ref._obj.value = self.driver
        return 0

    def cuDeviceGetCount(self, ref: Any) -> int:
        ref._obj.value = len(self.visible) if self.count is None else self.count
        return 0

    def cuDeviceGet(self, ref: Any, ordinal: int) -> int:
        if ordinal >= len(self.visible):
            return 101  # CUDA_ERROR_INVALID_DEVICE
        ref._obj.value = ordinal
        return 0

    def cuDeviceGetAttribute(self, ref: Any, attribute: int, dev: Any) -> int:
        self._wait_if_hung("cuDeviceGetAttribute")
        cc = self.visible[dev.value][1]
        ref._obj.value = cc[0] if attribute == 75 else cc[1]
        return 0

    def cuDeviceGetName(self, buffer: Any, size: int, dev: Any) -> int:
        buffer.value = self.visible[dev.value][0].encode()
        return 0

    def cuDeviceGetPCIBusId(self, buffer: Any, size: int, dev: Any) -> int:
        buffer.value = self.visible[dev.value][2].upper().encode()  # the driver writes "0000:01:00.0"
        return 0

    def cuDeviceGetUuid_v2(self, buffer: Any, dev: Any) -> int:
        buffer.raw = bytes.fromhex(self.visible[dev.value][3].removeprefix("GPU-").replace("-", ""))
        return 0

    def cuDevicePrimaryCtxRetain(self, ref: Any, dev: Any) -> int:
        ref._obj.value = 1
        self._ordinal = dev.value
        return 0

    def cuCtxPushCurrent_v2(self, ctx: Any) -> int:
        return 0

    def cuModuleLoadData(self, ref: Any, ptx: Any) -> int:
        text = ptx.value.decode()
        self.jit.append((self._ordinal, text))
        isa = re.search(r"\.version (\d+\.\d+)", text).group(1)
        driver_isa = (
            rules.ptx_isa(rules.cuda_from_int(self.driver)) or "0.0"
        )  # older than CUDA 12.0: none known
        if rules.version_tuple(isa) > rules.version_tuple(driver_isa):
            return 222  # CUDA_ERROR_UNSUPPORTED_PTX_VERSION
        ref._obj.value = 1
        return 0

    def cuModuleUnload(self, module: Any) -> int:
        return 0

    def cuCtxPopCurrent_v2(self, ref: Any) -> int:
        return 0

    def cuDevicePrimaryCtxRelease_v2(self, dev: Any) -> int:
        return 0


# --- The frameworks, as modules the doctor's child process imports ------------------------------------------
# tests/gpu_doctor/fake_frameworks/{tensorflow,jax}: real files on the child's sys.path
# (Boundary.python_path), doing what a JSON spec says (KW_FAKE_FRAMEWORK names it). TensorFlow's stand-in logs
# like the real one: a line of level I/W/E only when TF_CPP_MIN_LOG_LEVEL lets it through (checked against
# TensorFlow 2.21 itself in tests/gpu_doctor/test_framework_words.py).
FAKE_FRAMEWORKS = Path(__file__).resolve().with_name("fake_frameworks")
SPEC_VARIABLE = "KW_FAKE_FRAMEWORK"


class Machine:
    """A staged workstation under ``root``. Change its parts; ``boundary()`` runs the doctor against it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env: dict[str, str] = {}
        self.nvml: Any = FakeNvml()
        self.cuda: Any = FakeCuda()
        self.loader = FakeLoader()
        self.system_libraries: dict[str, str] = {}  # the loader cache: "libcudnn.so.9" -> its path
        self.elfs: dict[str, Elf] = {}  # path -> the dynamic section the loader reads (RUNPATH)
        self.metadata = FakeMetadata()
        self.modules: dict[str, Any] = {}  # what the doctor's own process imports (it imports no framework)
        self.timeouts: dict[str, float] = {}  # shorter time limits for the staged hangs
        for d in ("sys/bus/pci/devices", "proc/sys/kernel", "dev", "lib/modules", "site-packages"):
            self.path(d).mkdir(parents=True, exist_ok=True)
        self.write("proc/sys/kernel/osrelease", "6.8.0-45-generic")
        # The doctor runs in a checkout's .venv-run (make doctor), with the project and its loader hook in it.
        self.write("checkout/Makefile")
        self.write("checkout/pyproject.toml", f'[project]\nname = "{environment.PROJECT}"\n')
        self.prefix = self.path("checkout/.venv-run")
        self.metadata.versions[environment.PROJECT] = "0.1.0"
        self.metadata.file_lists[environment.PROJECT] = [self.write(f"site-packages/{loader.HOOK_FILE}")]

    # --- files ---------------------------------------------------------------------------------------------
    def path(self, rel: str) -> Path:
        return self.root / rel

    def write(self, rel: str, text: str = "") -> Path:
        p = self.path(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    def remove(self, rel: str) -> None:
        p = self.path(rel)
        if p.is_symlink() or p.is_file():
            p.unlink()
        elif p.is_dir():
            for child in sorted(p.rglob("*"), reverse=True):
                child.unlink() if not child.is_dir() or child.is_symlink() else child.rmdir()
            p.rmdir()

    def pci_device(
        self, address: str, vendor: str, cls: str, device: str, driver: str | None, width: int = 16
    ) -> None:
        """A PCI function; ``width``: its own maximum link width (sysfs max_link_width, its capability)."""
        base = f"sys/bus/pci/devices/{address}"
        self.write(f"{base}/vendor", vendor + "\n")
        self.write(f"{base}/class", cls + "\n")
        self.write(f"{base}/device", f"0x{device}\n")
        self.write(f"{base}/max_link_width", f"{width}\n")
        self.write(f"{base}/current_link_width", f"{width}\n")
        self.bind(address, driver)

    def kernel_log(self, *messages: str, at_s: float = 100.0, uptime_s: float = 160.0) -> None:
        """/dev/kmsg as the kernel gives it: one "prio,seq,usec,flags;message" record a line, logged ``at_s``
        seconds after boot; /proc/uptime says ``uptime_s``."""
        usec = int(at_s * 1e6)
        self.write("dev/kmsg", "".join(f"6,{i},{usec + i},-;{m}\n" for i, m in enumerate(messages)))
        self.write("proc/uptime", f"{uptime_s:.2f} {uptime_s * 1.5:.2f}\n")

    def bind(self, address: str, driver: str | None) -> None:
        link = self.path(f"sys/bus/pci/devices/{address}/driver")
        if link.is_symlink():
            link.unlink()
        if driver:
            link.symlink_to(f"../../../bus/pci/drivers/{driver}")

    def load_module(self, version: str = "570.133.20", open_flavour: bool = True) -> None:
        kind = "Open Kernel Module for x86_64" if open_flavour else "Kernel Module"
        self.write(
            "proc/driver/nvidia/version", f"NVRM version: NVIDIA UNIX {kind}  {version}  Release Build\n"
        )
        self.path("sys/module/nvidia").mkdir(parents=True, exist_ok=True)

    def unload_module(self) -> None:
        self.remove("proc/driver/nvidia")
        self.remove("sys/module/nvidia")

    def install_module(self, kernel: str) -> None:
        self.write(f"lib/modules/{kernel}/updates/dkms/nvidia.ko.zst")

    def device_nodes(self, gpus: int = 1, uvm: bool = True) -> None:
        for name in ["nvidiactl", *(f"nvidia{i}" for i in range(gpus)), *(["nvidia-uvm"] if uvm else [])]:
            self.write(f"dev/{name}")
        if uvm:
            self.path("sys/module/nvidia_uvm").mkdir(parents=True, exist_ok=True)

    def secure_boot(self, on: bool) -> None:
        var = self.path("sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c")
        var.parent.mkdir(parents=True, exist_ok=True)
        var.write_bytes(b"\x06\x00\x00\x00" + (b"\x01" if on else b"\x00"))

    # --- packages -------------------------------------------------------------------------------------------
    def install_tensorflow(self, version: str = "2.21.0", and_cuda: bool = True) -> None:
        self.metadata.versions["tensorflow"] = version
        self.metadata.requirements["tensorflow"] = list(TF_AND_CUDA)
        framework = self.write("site-packages/tensorflow/libtensorflow_framework.so.2")
        self.metadata.file_lists["tensorflow"] = [framework]
        self.elfs[str(framework)] = Elf(soname=framework.name, runpath=TF_RUNPATH)
        if and_cuda:
            for package in WHEELS:
                self.install_wheel(package)

    def install_wheel(self, package: str, version: str | None = None) -> None:
        default, part, libs = WHEELS[package]
        version = version or default
        self.metadata.versions[package] = version
        files = []
        for lib in libs:
            f = self.write(f"site-packages/nvidia/{part}/lib/{lib}")
            files.append(f)
            kind_version = version if lib.startswith(("libcudnn", "libcudart")) else None
            self.loader.add(f, kind_version)
        self.metadata.file_lists[package] = files

    def uninstall(self, package: str) -> None:
        self.metadata.versions.pop(package, None)
        for f in self.metadata.file_lists.pop(package, []):
            f.unlink(missing_ok=True)

    def framework(self, name: str, **spec: Any) -> None:
        """What the stand-in framework ``name`` does in the doctor's child process: gpus (its GPU list), log
        (lines it logs while listing them: "W0000 ...", filtered by TF_CPP_MIN_LOG_LEVEL like TensorFlow),
        error (JAX: the exception of jax.devices), fail / abort / hang / wrong (what its first GPU computation
        does: raise this message, write this and abort, never return, return wrong numbers), compute_log, and
        at ("first": the first GPU operation, "xla": the XLA-compiled function, "import": the import)."""
        spec_file = self.write(f"fake_frameworks/{name}.json", json.dumps(spec))
        self.env[SPEC_VARIABLE] = str(spec_file.parent)

    def boundary(self) -> Boundary:
        return Boundary(
            root=self.root,
            env=self.env,
            nvml=lambda: self.nvml,
            cuda=self._cuda,
            load_library=self.loader,
            elf=lambda path: self.elfs.get(os.path.normpath(path)),
            ld_cache=lambda: dict(self.system_libraries),
            metadata=self.metadata,
            import_module=self._import,
            python_path=(str(FAKE_FRAMEWORKS),),
            timeouts=self.timeouts,
            prefix=self.prefix,
            staged=True,
        )

    def release(self) -> None:
        """Let every staged hang end (a test's clean-up)."""
        for part in (self.nvml, self.cuda):
            if hasattr(part, "release"):
                part.release()

    def _cuda(self) -> Any:
        if isinstance(self.cuda, OSError):
            raise self.cuda
        self.cuda.env = self.env
        return self.cuda

    def _import(self, name: str) -> Any:
        if name not in self.modules:
            raise ImportError(f"No module named {name!r}")
        return self.modules[name]

    # --- a whole machine ------------------------------------------------------------------------------------
    @classmethod
    def healthy_h100(cls, root: Path) -> Machine:
        """One H100 on PCIe Gen5 x16, driver 570 (CUDA 12.8) loaded, TensorFlow 2.21 with its CUDA wheels."""
        m = cls(root)
        m.pci_device("0000:01:00.0", "0x10de", "0x030200", H100_PCI_ID, "nvidia")
        m.pci_device("0000:00:1f.3", "0x8086", "0x040300", "7a50", "snd_hda_intel")  # not a GPU
        m.load_module()
        m.device_nodes()
        m.nvml = FakeNvml(**H100_NVML)
        m.cuda = FakeCuda(driver=12080)
        m.install_tensorflow()
        m.framework("tensorflow", gpus=["/physical_device:GPU:0"])
        m.kernel_log("NVRM: loading NVIDIA UNIX Open Kernel Module for x86_64  570.133.20")
        return m

    @classmethod
    def two_gpus(cls, root: Path, gpus: list[tuple[str, str, tuple[int, int]]]) -> Machine:
        """A healthy machine with two GPUs, (name, PCI device id, compute capability) each, at bus 01 and 41
        (NVML's GPU 0 and 1, tests/smoke/fake_nvml.py's bus ids and UUIDs)."""
        m = cls.healthy_h100(root)
        m.remove("sys/bus/pci/devices/0000:01:00.0")
        for i, (_, pci_id, _) in enumerate(gpus):
            m.pci_device(fake_bus_id(i), "0x10de", "0x030200", pci_id, "nvidia")
        m.device_nodes(gpus=len(gpus))
        per_gpu = {i: {"nvmlDeviceGetName": name, "nvmlDeviceGetCudaComputeCapability": cc}
                   for i, (name, _, cc) in enumerate(gpus)}  # fmt: skip
        m.nvml = FakeNvml(gpus=len(gpus), per_gpu=per_gpu, **H100_NVML)
        m.cuda = FakeCuda(driver=12080, devices=[(name, cc) for name, _, cc in gpus])
        m.framework("tensorflow", gpus=[f"/physical_device:GPU:{i}" for i in range(len(gpus))])
        return m


# --- Faults more than one test stages ---------------------------------------------------------------------
def container_without_gpus(m: Machine) -> None:
    """A container started without --gpus: sysfs still shows the host's GPU, /dev has no NVIDIA node."""
    m.write(".dockerenv")
    for node in ("nvidiactl", "nvidia0", "nvidia-uvm"):
        m.remove(f"dev/{node}")


def libcuda_not_mounted(m: Machine) -> None:
    """A container whose NVIDIA_DRIVER_CAPABILITIES lacks compute: NVML works, libcuda.so.1 is absent."""
    m.write(".dockerenv")
    m.cuda = OSError("libcuda.so.1: cannot open shared object file: No such file or directory")


def nvml_error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)
