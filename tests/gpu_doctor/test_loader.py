"""The loader's rules (gpu_doctor/loader.py) on real files, and the libraries layer on staged machines: it
finds a library where the framework's loader finds it, so it says BROKEN, naming the library, where the
framework would fail, and OK only where it would load."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from gpu_doctor import loader
from gpu_doctor.cli import main
from tests.conftest import require
from tests.gpu_doctor.staging import WHEELS, Machine

CUSOLVER = WHEELS["nvidia-cusolver-cu12"]


def _doctor(m: Machine, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["--no-compute", *argv], boundary=m.boundary())
    return code, " ".join(capsys.readouterr().out.split())


# --- the rules on real files -------------------------------------------------------------------------------
def test_read_elf_reads_tensorflows_whole_runpath() -> None:
    """The installed TensorFlow wheel (the same file with or without the CUDA wheels): its RUNPATH, over
    10 kB, names the nvidia/*/lib folders of its loader, not nvidia/cusolver/lib: why the hook exists."""
    files = metadata.distribution("tensorflow").files or []
    library = next(f for f in files if str(f).endswith("libtensorflow_framework.so.2"))
    elf = loader.read_elf(metadata.distribution("tensorflow").locate_file(library))
    assert elf is not None and elf.soname == "libtensorflow_framework.so.2" and "libc.so.6" in elf.needed
    folders = {p.split("nvidia/")[1] for p in elf.runpath if "nvidia/" in p}
    assert {"cudnn/lib", "cublas/lib", "cuda_runtime/lib", "nccl/lib", "cufft/lib", "cusparse/lib"} <= folders
    assert "cusolver/lib" not in folders
    assert all(p.startswith("$ORIGIN/") for p in elf.runpath)  # whole entries, none cut short


def test_read_elf_on_what_is_not_a_shared_object(tmp_path: Path) -> None:
    (tmp_path / "text").write_text("not an ELF file")
    assert loader.read_elf(tmp_path / "text") is None and loader.read_elf(tmp_path / "missing") is None


def test_ld_cache_matches_ldconfig() -> None:
    """The cache file read directly gives what `ldconfig -p` lists for this architecture, entry for entry."""
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    require(Path(ldconfig).exists(), "ldconfig (Debian's libc-bin)")
    require(platform.machine() == "x86_64", "an x86-64 machine (the architecture tag compared below)")
    listed = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, check=True).stdout
    expected: dict[str, str] = {}
    for line in listed.splitlines()[1:]:
        name, _, path = line.strip().partition(" => ")
        if "x86-64" in name:
            expected.setdefault(name.split(" (")[0], path)
    assert len(expected) > 10 and loader.ld_cache() == expected


def test_search_order_is_the_loaders(tmp_path: Path) -> None:
    """LD_LIBRARY_PATH before the caller's RUNPATH ($ORIGIN expanded); RPATH only without RUNPATH."""
    caller = tmp_path / "pkg" / "libcaller.so"
    env = {"LD_LIBRARY_PATH": f"{tmp_path}/first::{tmp_path}/second"}
    both = loader.Elf(rpath=("/rpath",), runpath=("$ORIGIN/../lib", "${ORIGIN}/deps"))
    path = loader.search_path(str(caller), both, env, {"libx.so.1": "/cache/libx.so.1"})
    assert [f for f, _ in path.folders] == [
        f"{tmp_path}/first", f"{tmp_path}/second", f"{tmp_path}/lib", f"{tmp_path}/pkg/deps"
    ]  # fmt: skip
    only_rpath = loader.search_path(str(caller), loader.Elf(rpath=("$ORIGIN",)), {}, {})
    assert only_rpath.folders == [(f"{tmp_path}/pkg", "the RPATH of libcaller.so")]
    (tmp_path / "second").mkdir()
    (tmp_path / "second" / "libx.so.1").write_text("")
    assert path.find("libx.so.1") == (f"{tmp_path}/second/libx.so.1", "LD_LIBRARY_PATH")
    (tmp_path / "second" / "libx.so.1").unlink()
    assert path.find("libx.so.1") == ("/cache/libx.so.1", "the loader cache (ldconfig)")
    assert path.find("libnot-there.so.7") is None


def test_the_hook_finds_what_tensorflow_would_miss(tmp_path: Path) -> None:
    m = Machine.healthy_h100(tmp_path)
    missing = loader.unreachable_wheel_libraries("tensorflow", m.metadata, {}, m.boundary().elf, {})
    assert [soname for soname, _ in missing] == ["libcusolver.so.11"]
    on_path = {"LD_LIBRARY_PATH": str(tmp_path / "site-packages/nvidia/cusolver/lib")}
    assert loader.unreachable_wheel_libraries("tensorflow", m.metadata, on_path, m.boundary().elf, {}) == []


def test_the_hook_is_installed_with_the_project() -> None:
    """make setup installed it into .venv: the .pth in site-packages, the finder in sys.meta_path."""
    files = {f.name for f in metadata.distribution("keras-workstation").files or []}
    assert {loader.HOOK_FILE, "keras_workstation_preload.py"} <= files
    code = "import sys; print([type(f).__name__ for f in sys.meta_path][0])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "_BeforeTensorFlow"


# --- the libraries layer on staged machines ----------------------------------------------------------------
def test_healthy_h100_loads_cusolver_through_the_hook(tmp_path: Path, capsys) -> None:
    code, out = _doctor(Machine.healthy_h100(tmp_path), capsys)
    assert code == 0 and "verdict: OK" in out, out
    assert "as tensorflow loads them; cusolver preloaded by the loader hook" in out


def test_without_the_hook_tensorflow_misses_cusolver(tmp_path: Path, capsys) -> None:
    m = Machine.healthy_h100(tmp_path)
    m.env["KERAS_WORKSTATION_PRELOAD"] = "0"
    code, out = _doctor(m, capsys)
    assert code == 1 and "verdict: BROKEN at the CUDA libraries layer" in out, out
    assert "libcusolver.so.11 (cusolver) is not on tensorflow 2.21.0's library search path" in out
    assert "the RUNPATH of libtensorflow_framework.so.2" in out
    assert "run: unset KERAS_WORKSTATION_PRELOAD" in out


def test_a_missing_hook_is_repaired_by_the_environments_own_command(tmp_path: Path, capsys) -> None:
    m = Machine.healthy_h100(tmp_path)
    m.uninstall("keras-workstation")
    code, out = _doctor(m, capsys)
    assert code == 1, out
    assert "the loader hook keras_workstation_preload.pth that preloads it is not installed" in out
    assert 'run: reinstall the environment: make env EXTRAS="jax gpu"' in out, out


def test_ld_library_path_serves_tensorflow_without_the_hook(tmp_path: Path, capsys) -> None:
    m = Machine.healthy_h100(tmp_path)
    m.uninstall("keras-workstation")
    m.env["LD_LIBRARY_PATH"] = str(tmp_path / "site-packages/nvidia/cusolver/lib")
    code, out = _doctor(m, capsys)
    assert code == 0 and "verdict: OK" in out, out


def test_the_loader_cache_serves_a_library_the_wheel_lacks(tmp_path: Path, capsys) -> None:
    """A system cuDNN registered with ldconfig, no cuDNN wheel: TensorFlow loads it, so does the doctor."""
    m = Machine.healthy_h100(tmp_path)
    m.uninstall("nvidia-cudnn-cu12")
    system = m.write("usr/lib/x86_64-linux-gnu/libcudnn.so.9")
    m.loader.add(system, "9.3.0")
    m.system_libraries["libcudnn.so.9"] = str(system)
    code, out = _doctor(m, capsys)
    assert code == 0 and "libcudnn.so.9 9.3.0" in out, out


def test_jax_loads_the_wheels_copy_whatever_ld_library_path_holds(tmp_path: Path, capsys) -> None:
    """JAX's plugin loads the wheel's cuDNN by path before XLA looks: an old cuDNN on LD_LIBRARY_PATH, which
    shadows the wheel for TensorFlow (tests/gpu_doctor/test_fault_injection.py), is not used by JAX."""
    m = Machine.healthy_h100(tmp_path)
    m.metadata.requirements["jax-cuda12-plugin"] = [
        'nvidia-cudnn-cu12>=9.1; extra == "with-cuda"',
        'nvidia-cublas-cu12; extra == "with-cuda"',
    ]
    m.metadata.versions.update({"jax": "0.10.2", "jax-cuda12-plugin": "0.10.2"})
    old = m.write("usr/local/cudnn-9.1/lib/libcudnn.so.9")
    m.loader.add(old, "9.1.0")
    m.env["LD_LIBRARY_PATH"] = str(old.parent)
    _, out = _doctor(m, capsys, "--lower-only", "--backend", "jax")
    assert "CUDA libraries OK" in out and "as jax loads them" in out and "libcudnn.so.9 9.28.0" in out, out
    _, out = _doctor(m, capsys, "--lower-only", "--backend", "tensorflow")
    assert "an older libcudnn.so.9 9.1.0 in LD_LIBRARY_PATH" in out, out
