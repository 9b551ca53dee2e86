"""The framework and compute layers: the only ones that touch TensorFlow, JAX or PyTorch, and only in a child
process (``python -m gpu_doctor.child``), so that a framework that aborts, crashes or hangs becomes a cause in
its own words instead of taking the doctor down.

The framework layer first applies the build rules without importing anything (CPU-only build, compute
capability not in the build, a combination reported broken, for every GPU the framework will use); then, when
asked, the child imports the framework and lists its GPUs, with the framework's logs at the level that carries
the reason (TF_CPP_MIN_LOG_LEVEL=0: TensorFlow's W-level lines say why it found no GPU). The compute layer
reads what the same child computed on the framework's GPU 0 and names that GPU (CUDA ordinal -> PCI bus id,
UUID).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gpu_doctor import rules
from gpu_doctor.context import Context
from gpu_doctor.model import NA, OK, Layer

REL_TOLERANCE = 1e-2  # TF32 matmuls on Ampere+ differ from the CPU by ~1e-3
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # what the child needs on sys.path to import gpu_doctor
STEP_MARK = "--- gpu_doctor.child: "  # the child writes it to stderr as each step starts
GENERIC_REMEDY = "python -m smoke_tests doctor --json (the framework's whole message and its log)"
# The framework's own log lines worth quoting: absl's W/E/F lines (TensorFlow, XLA), LLVM's fatal errors, and
# anything about the GPU stack.
_LOG_LINE = re.compile(r"^[WEF]\d{4} |LLVM|\bfatal\b|\babort|\berror\b|\bfailed\b|^warning:", re.IGNORECASE)
_GPU_WORDS = re.compile(r"gpu|cuda|cudnn|dlopen|driver|device|ptx|plugin|libdevice|xla", re.IGNORECASE)
_NOISE = re.compile(
    r"^\s|^File \"|^Fatal Python error|^Current thread|^Thread 0x|^Extension modules|^---|"
    r"^WARNING: All log messages before absl"
)


@contextlib.contextmanager
def captured_stderr(lines: list[str]) -> Iterator[None]:
    """Capture what C++ code writes to file descriptor 2 (TensorFlow's and XLA's logs) into ``lines``."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors="replace").splitlines())
            lines.extend(str(w.message) for w in caught)


def relevant(lines: list[str], keep: int = 8) -> list[str]:
    """The framework's own lines about the GPU stack (its W/E lines, fatal errors), the last ``keep``."""
    found = [
        line.strip()
        for line in lines
        if not _NOISE.match(line) and (_GPU_WORDS.search(line) or _LOG_LINE.search(line))
    ]
    return found[-keep:]


def words(lines: list[str]) -> str | None:
    """The line that says why: one that a rules.toml [[framework_errors]] needle matches, else the framework's
    last error or warning line, else its last line."""
    lines = [line.strip() for line in lines if line.strip() and not _NOISE.match(line)]
    for line in reversed(lines):
        if rules.framework_error(line):
            return line[:300]
    for line in reversed(lines):
        if _LOG_LINE.search(line) and _GPU_WORDS.search(line):
            return line[:300]
    return lines[-1][:300] if lines else None


def list_gpus(framework: str, import_module: Any, capture: bool = True) -> tuple[list[str], str | None]:
    """The GPUs the framework can use, and the framework's own reason when it has none (its exception or the
    log lines it printed while looking: captured here, and written back to stderr for the logs). The doctor's
    child does not capture (``capture=False``): a framework that aborts would take the captured lines with it,
    and the doctor reads the child's whole stderr anyway."""
    logs: list[str] = []
    with captured_stderr(logs) if capture else contextlib.nullcontext():
        gpus, reason = _list(framework, import_module)
    if logs:
        os.write(2, ("\n".join(logs) + "\n").encode(errors="replace"))
    if not gpus and reason is None:
        reason = words(logs)
    return gpus, reason


def _list(framework: str, import_module: Any) -> tuple[list[str], str | None]:
    if framework == "tensorflow":
        tf = import_module("tensorflow")
        if not tf.sysconfig.get_build_info().get("is_cuda_build"):
            return [], "this TensorFlow is a CPU-only build (is_cuda_build is False)"
        return [d.name for d in tf.config.list_physical_devices("GPU")], None
    if framework == "jax":
        jax = import_module("jax")
        try:
            return [str(d) for d in jax.devices("gpu")], None
        except RuntimeError as err:  # JAX's reason ("Unable to initialize backend 'cuda': ..."), kept whole
            return [], str(err)
    torch = import_module("torch")
    if not torch.cuda.is_available():
        return [], None  # torch's reason comes as a warning, captured with the logs
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())], None


# --- The build rules ----------------------------------------------------------------------------------------
def _static_rules(ctx: Context, layer: Layer) -> Layer | None:
    build = ctx.build
    if not build.version:
        return layer.broken(
            f"{build.framework} is not installed in this environment (KERAS_BACKEND={ctx.backend})",
            f"{build.install_gpu}, or pick an installed backend: KERAS_BACKEND=jax|torch|tensorflow",
            summary=f"{build.framework} missing",
        )
    if build.gpu_capable is False:
        # Sources: tensorflow/tensorflow#63362 (pip install tensorflow: no GPU), jax-ml/jax#29068.
        return layer.broken(
            f"{build.cpu_only_reason}: it cannot use the GPU",
            build.install_gpu,
            summary=f"{build.framework} {build.version}: CPU-only",
        )
    for gpu in ctx.visible_gpus():
        who, cc = gpu["label"], gpu["compute_capability"]
        broken = rules.known_broken(build.framework, build.version, cc, build.archs, build.cuda)
        if broken:
            layer.facts["rule"] = {"id": broken["id"], "source": broken["source"]}
            return layer.broken(
                f"{who}: {broken['cause']}",
                broken["remedy"],
                summary=f"{build.framework} {build.version} on cc {cc}: reported broken",
            )
        if build.archs:
            how = rules.code_for(cc, build.archs)
            if how is None:
                return layer.broken(
                    f"{who}'s compute capability {cc} is not in {build.framework} {build.version}'s "
                    f"build ({', '.join(build.archs)}): the GPU is too old for this wheel",
                    "use an older framework release that still supports this GPU, or another GPU",
                    summary=f"cc {cc} not in the build",
                )
            layer.facts.setdefault("code", {})[gpu["short"]] = how
    return None


# --- The child process --------------------------------------------------------------------------------------
def _child_env(ctx: Context) -> dict[str, str]:
    env = dict(ctx.boundary.env)
    path = [*ctx.boundary.python_path, str(PACKAGE_ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
    env["TF_CPP_MIN_LOG_LEVEL"] = (
        "0"  # every line: the reason is often a W line; the doctor picks what to show
    )
    env["PYTHONFAULTHANDLER"] = "1"  # a crash in native code still prints where it was
    env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")  # a short probe takes only what it needs
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    return env


def _records(path: Path) -> list[dict[str, Any]]:
    found = []
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
    return found


def _stop(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=3)


def run_child(ctx: Context) -> dict[str, Any]:
    """Run gpu_doctor.child for the build's framework; what it reported, how it ended and what it said:
    {"records", "returncode", "overdue" (the step that ran past its time limit), "stderr" (lines)}."""
    limits = rules.timeouts(ctx.boundary.timeouts)
    budget = {"import": limits["framework_s"], "compute": limits["compute_s"]}
    with tempfile.TemporaryDirectory(prefix="gpu-doctor-") as tmp:
        results, log = Path(tmp) / "results.jsonl", Path(tmp) / "stderr.log"
        cmd = [ctx.boundary.python, "-m", "gpu_doctor.child", ctx.build.framework, str(results)]
        cmd += ["--compute"] if ctx.ask_compute else []
        overdue = None
        with log.open("wb") as err:
            # Its own process group: whatever it starts (XLA runs ptxas) is stopped with it.
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=_child_env(ctx), process_group=0
            )
            try:
                step, since = "import", time.monotonic()
                while proc.poll() is None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=0.1)
                    started = [r["step"] for r in _records(results) if r.get("event") == "start"]
                    if started and started[-1] != step:
                        step, since = started[-1], time.monotonic()
                    if proc.poll() is None and time.monotonic() - since > budget.get(
                        step, limits["compute_s"]
                    ):
                        overdue = {"step": step, "budget_s": budget.get(step)}
                        break
            finally:
                _stop(proc)
        return {
            "records": _records(results),
            "returncode": proc.returncode,
            "overdue": overdue,
            "stderr": log.read_text(errors="replace").splitlines(),
        }


def _phase(lines: list[str], step: str) -> list[str]:
    """The child's stderr lines of one step (after its ``--- gpu_doctor.child: STEP`` mark)."""
    marks = [i for i, line in enumerate(lines) if line.strip() == STEP_MARK + step]
    if not marks:
        return lines
    later = [i for i, line in enumerate(lines) if line.startswith(STEP_MARK) and i > marks[0]]
    return lines[marks[0] + 1 : later[0] if later else len(lines)]


def how_it_ended(child: dict[str, Any]) -> str:
    """ "was killed by SIGABRT", "exited with 1", "did not finish within 180 s"."""
    if child["overdue"]:
        return f"did not finish within {child['overdue']['budget_s']:g} s"
    code = child["returncode"]
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with {code} before it reported"


def _record(child: dict[str, Any], event: str) -> dict[str, Any] | None:
    return next((r for r in child["records"] if r.get("event") == event), None)


def _last_words(ctx: Context, layer: Layer, phase: list[str]) -> tuple[str, str]:
    """Cause and remedy from what a framework that died or hung said last (its stderr tail: the facts)."""
    layer.facts["stderr_tail"] = [line for line in phase if line.strip()][-20:]
    return explain_failure(words(phase) or "no message", ctx.nvml, ctx.build.install_gpu)


def framework_layer(ctx: Context) -> Layer:
    layer, build = Layer("framework"), ctx.build
    layer.facts = {"backend": ctx.backend, "build": build.as_dict()}
    if _static_rules(ctx, layer) is not None:
        return layer
    code = ", ".join(f"{who}: {how}" for who, how in layer.facts.get("code", {}).items())
    what = f"{build.framework} {build.version}" + (
        f" (CUDA {build.cuda}{'; ' + code if code else ''})" if build.cuda else ""
    )
    if not ctx.ask_framework:
        layer.status, layer.summary = (
            OK,
            f"{what}: the build suits the GPU (not imported: checked by the rules only)",
        )
        return layer
    ctx.child = child = run_child(ctx)
    phase = _phase(child["stderr"], "import")
    layer.facts["log"] = relevant(phase)
    found = _record(child, "framework")
    if found is None:
        cause, remedy = _last_words(ctx, layer, phase)
        if remedy == GENERIC_REMEDY:
            remedy = f"reinstall it: {build.install_gpu}; the full output: {GENERIC_REMEDY}"
        return layer.broken(
            f"importing {build.framework} {how_it_ended(child)}. It said: {cause}",
            remedy,
            summary=f"{build.framework} {build.version}: its import {how_it_ended(child)}",
        )
    if "error" in found:
        return layer.broken(
            f"importing {build.framework} failed: {found['error']}",
            f"reinstall it: {build.install_gpu}",
        )
    gpus = found["gpus"]
    layer.facts["gpus"] = gpus
    if not gpus:
        said = found.get("reason") or words(phase) or "no message"
        blame = rules.blame_for_error(said)
        where = f" (points at the {blame.replace('_', ' ')} layer)" if blame else ""
        return layer.broken(
            f"{build.framework} lists no GPU although the layers below work. It says: {said}{where}",
            f"{build.install_gpu}; see the message above",
            summary=f"{build.framework} {build.version}: no GPU",
        )
    layer.status = OK
    layer.summary = f"{what}: {len(gpus)} GPU(s): {', '.join(gpus)}"
    return layer


# --- Compute ------------------------------------------------------------------------------------------------
def explain_failure(text: str, nvml_picture: dict[str, Any], install_gpu: str) -> tuple[str, str]:
    """Cause and remedy for a framework error, using what the layers below found: when the error is about
    memory or cuDNN's start and other processes hold GPU memory, they are named (not missing libraries); an
    error rules.toml knows the fix of gets that fix."""
    entry = rules.framework_error(text)
    blame = entry["blame"] if entry else None
    first = text.strip().splitlines()[0][:300] if text.strip() else "no message"
    if entry and "cause" in entry:
        return f"{first} -> {entry['cause']}", entry["remedy"].format(install_gpu=install_gpu)
    if blame == "memory":
        held = [
            (g["index"], p)
            for g in nvml_picture.get("gpus", [])
            for p in (g.get("processes") if isinstance(g.get("processes"), list) else [])
        ]
        if held:
            who = ", ".join(f"PID {p['pid']} on GPU {i} ({p['used_mib']} MiB)" for i, p in held)
            return (
                f"{first} -> the GPU memory is held by other processes: {who}",
                "stop them (nvidia-smi), or let the framework grow its memory: "
                "TF_FORCE_GPU_ALLOW_GROWTH=true / XLA_PYTHON_CLIENT_PREALLOCATE=false",
            )
        return (
            f"{first} -> cuDNN/cuBLAS could not get GPU memory",
            "nvidia-smi (memory in use); TF_FORCE_GPU_ALLOW_GROWTH=true / "
            "XLA_PYTHON_CLIENT_PREALLOCATE=false",
        )
    if blame == "health":
        return f"{first} -> the GPU reports an uncorrectable memory (ECC) error", "see the health layer"
    if blame == "cuda_libraries":
        return (
            f"{first} -> a CUDA library is missing or the wrong version",
            f"{install_gpu}; unset LD_LIBRARY_PATH",
        )
    if blame == "cuda_driver":
        return (
            f"{first} -> the driver cannot run this build's GPU code",
            "upgrade the NVIDIA driver (make provision)",
        )
    return first, GENERIC_REMEDY


def compute_layer(ctx: Context) -> Layer:
    layer = Layer("compute")
    if not ctx.ask_compute:
        layer.status, layer.summary = NA, "not run (asked for the lower layers only)"
        return layer
    shown = ctx.visible_gpus()
    gpu0 = shown[0]["label"] if shown else "GPU 0"
    layer.facts["ran_on"] = {k: v for k, v in (shown[0] if shown else {}).items() if k != "label"}
    child = ctx.child
    phase = _phase(child.get("stderr", []), "compute")
    layer.facts["log"] = relevant(phase)
    done = _record(child, "compute") if child else None
    if done is None:
        # The framework died or hung while it computed: its last words are the cause.
        cause, remedy = _last_words(ctx, layer, phase)
        return layer.broken(
            f"the framework's process {how_it_ended(child)} while it computed on {gpu0}. It said: {cause}",
            remedy,
            summary=f"the framework {how_it_ended(child)} on {gpu0}",
        )
    if "error" in done:
        text = done["error"] + "\n" + "\n".join(relevant(phase))
        cause, remedy = explain_failure(text, ctx.nvml, ctx.build.install_gpu)
        return layer.broken(cause, remedy, summary=f"a GPU computation failed on {gpu0}")
    errors = done["relative_error"]
    layer.facts["relative_error"] = errors
    wrong = {k: v for k, v in errors.items() if not v <= REL_TOLERANCE}
    if wrong:
        return layer.broken(
            f"{gpu0}'s results differ from the CPU: {', '.join(f'{k} {v:.1e}' for k, v in wrong.items())} "
            f"(tolerance {REL_TOLERANCE:.0e})",
            "check the health layer (ECC) and the driver; rerun to see if it repeats",
        )
    layer.status = OK
    layer.summary = (
        f"matmul, convolution + gradient (cuDNN), XLA exp/tanh on {gpu0} match the CPU ("
        + ", ".join(f"{k} {v:.0e}" for k, v in errors.items())
        + ")"
    )
    return layer
