"""The environment a machine gets: the extras rule (the doctor's hardware rule, standard library only), the
stamp keyed on the extras, the same set for the Makefile, Ansible and the image, and every remedy the doctor
prints for the GPU environment run here (for real, or its dry run: `make -n`, `uv ... --dry-run`)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from gpu_doctor import environment, rules
from gpu_doctor.diagnose import diagnose
from gpu_doctor.model import OK
from tests.conftest import REPO, require
from tests.gpu_doctor.staging import H100_PCI_ID, Machine
from tests.gpu_env.conftest import clean_env

UV = shutil.which("uv") or str(REPO / ".cache/uv/bin/uv")
GPU_SET = " ".join(rules.extras_for(True))


def _rules_extras(root: Path) -> str:
    """The Makefile's question, asked as it asks it: the system Python, no site-packages (-I -S)."""
    proc = subprocess.run(
        ["/usr/bin/python3", "-I", "-S", "gpu_doctor/rules.py", "extras", "--why"], cwd=REPO,
        capture_output=True, text=True, check=True,
        env={"GPU_DOCTOR_ROOT": str(root), "PATH": os.environ["PATH"]},
    )  # fmt: skip
    return proc.stdout.strip()


STAGES = {
    "nvidia-gpu-on-pci": lambda m: m.pci_device("0000:01:00.0", "0x10de", "0x030200", H100_PCI_ID, None),
    "nvidia-audio-only": lambda m: m.pci_device("0000:01:00.1", "0x10de", "0x040300", "22a3", None),
    "intel-igpu-only": lambda m: m.pci_device("0000:00:02.0", "0x8086", "0x030000", "a780", "i915"),
    "wsl2-dxg": lambda m: m.write("dev/dxg"),
    "device-nodes-only": lambda m: m.write("dev/nvidia0"),
    "nothing": lambda m: None,
}


@pytest.mark.parametrize("stage", STAGES, ids=list(STAGES))
def test_the_makefile_rule_is_the_hardware_layers(stage: str, tmp_path: Path) -> None:
    m = Machine(tmp_path)
    STAGES[stage](m)
    gpu = diagnose(m.boundary(), ask_framework=False).layers[0].status == OK
    assert _rules_extras(tmp_path) == " ".join(rules.extras_for(gpu))
    assert gpu == (stage in ("nvidia-gpu-on-pci", "wsl2-dxg", "device-nodes-only"))


def test_the_stamp_is_keyed_on_the_extras(tmp_path: Path) -> None:
    """A change of extras re-syncs (and removes the other set's stamp); the same extras again do nothing."""
    venv = tmp_path / "venv-run"
    venv.mkdir()  # uv would make it; UV=/bin/true does not

    def make(extras: str) -> str:
        proc = subprocess.run(
            ["make", "env", f"EXTRAS={extras}", f"RUN_VENV={venv}", "UV=/bin/true"], cwd=REPO,
            capture_output=True, text=True, check=True, env=clean_env(),
        )  # fmt: skip
        return proc.stdout

    assert "sync --frozen --no-dev" in make("jax") and (venv / ".synced-jax").is_file()
    out = make(GPU_SET)
    assert "--extra jax --extra gpu" in out and sorted(p.name for p in venv.iterdir()) == [".synced-jax+gpu"]
    assert "sync" not in make(GPU_SET)  # up to date
    assert "--extra jax\n" in make("jax") and sorted(p.name for p in venv.iterdir()) == [".synced-jax"]


def test_make_help_and_readme_document_the_override() -> None:
    helped = subprocess.run(["make", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "env " in helped and 'EXTRAS="jax gpu"' in helped
    readme = (REPO / "README.md").read_text()
    assert 'EXTRAS="jax gpu"' in readme and "make gpu-report" in readme


def test_ansible_and_the_image_install_the_same_sets(tmp_path: Path) -> None:
    """python_env's uv argv, for a machine with and without a GPU, and docker/build.sh's EXTRAS build-arg."""
    ansible = REPO / ".venv" / "bin" / "ansible-playbook"
    require(ansible.exists(), "ansible (make setup)")
    argv = {gpu: _python_env_argv(tmp_path, {"python_env_gpu_extra": gpu}) for gpu in (True, False)}
    for gpu, got in argv.items():
        assert [a.removeprefix("--extra=") for a in got if a.startswith("--extra=")] == rules.extras_for(gpu)
    script = (REPO / "docker" / "build.sh").read_text()
    assert 'rules.py extras --set "$variant"' in script and '"EXTRAS=$extras"' in script
    assert "${EXTRAS}" in (REPO / "docker" / "Dockerfile").read_text()


def _python_env_argv(tmp_path: Path, variables: dict) -> list[str]:
    role = REPO / "ansible" / "roles" / "python_env"
    out = tmp_path / f"argv-{len(list(tmp_path.iterdir()))}.json"
    playbook = tmp_path / "show.yml"
    playbook.write_text(textwrap.dedent(f"""
        - hosts: localhost
          gather_facts: false
          vars_files: ["{role}/defaults/main.yml", "{role}/vars/main.yml"]
          tasks:
            - ansible.builtin.copy:
                {{dest: "{out}", content: "{{{{ python_env_sync_argv | to_json }}}}", mode: "0644"}}
        """))  # fmt: skip
    proc = subprocess.run(
        [REPO / ".venv/bin/ansible-playbook", "-i", "localhost,", "-c", "local", playbook, "-e",
         json.dumps({"workstation_source_dir": str(REPO), "ansible_python_interpreter": "/usr/bin/python3",
                     **variables})],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    return json.loads(out.read_text())


# --- every remedy for the GPU environment, run -------------------------------------------------------------
def _project(tmp_path: Path, makefile: bool) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(f'[project]\nname = "{environment.PROJECT}"\n')
    if makefile:
        (project / "Makefile").write_text("")
    return project


def _uv_dry_run(uv_line: str, tmp_path: Path) -> str:
    """A `uv sync` line as make would run it, with --dry-run, into a new environment: the lock serves it."""
    words = shlex.split(uv_line)
    env = clean_env(UV_PROJECT_ENVIRONMENT=str(tmp_path / "dry-venv"))
    for word in list(words):
        if "=" in word and word.split("=")[0].isupper():  # VAR=value before the command
            words.remove(word)
    words[0] = UV
    proc = subprocess.run(
        [*words, "--dry-run"], cwd=REPO, capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def _make_dry_run(remedy: str) -> str:
    # -n: print, run nothing; -B: as if nothing were up to date (this checkout may have that environment)
    proc = subprocess.run(["bash", "-c", f"{remedy} -n -B"], cwd=REPO, capture_output=True, text=True,
                          env=clean_env(), check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("framework", ["tensorflow", "jax", "torch"])
def test_the_checkout_remedies_install_the_framework_gpu_build(framework: str, tmp_path: Path) -> None:
    """.venv-run and .venv of a checkout: the make command the doctor prints, run with -n, then its uv line
    with --dry-run: the lock installs the framework's CUDA libraries (and the loader hook's project)."""
    project = _project(tmp_path, makefile=True)
    for venv, target in ((".venv-run", "env"), (".venv", "setup")):
        remedy = environment.install_gpu(framework, "x", project / venv, {})
        assert remedy.startswith(f"make {target} ") and "pip install" not in remedy, remedy
        lines = [line for line in _make_dry_run(remedy).splitlines() if " sync --frozen" in line]
        assert len(lines) == 1, remedy
        would = _uv_dry_run(lines[0], tmp_path / venv)
        wanted = {"tensorflow": "nvidia-cudnn-cu12", "jax": "jax-cuda12-plugin", "torch": "torch=="}[
            framework
        ]
        assert wanted in would, would[-2000:]


@pytest.mark.parametrize("package", ["nvidia-ml-py", "jax", "torch"])
def test_the_checkout_remedies_bring_back_a_missing_package(package: str, tmp_path: Path) -> None:
    """A package the lock provides, missing from .venv-run or .venv (nvidia-ml-py for NVML, a backend for
    `python -m workloads --backend`): the make command, run with -n once the stamp that would hide it is
    gone, then its uv line with --dry-run, installs it; only torch changes the machine's extras."""
    project = _project(tmp_path, makefile=True)
    for venv, target in ((".venv-run", "env"), (".venv", "setup")):
        remedy = environment.install(package, project / venv, {})
        resync, _, command = remedy.rpartition(" && ")
        assert command.startswith(f"make {target}") and "pip install" not in remedy, remedy
        assert resync == ("" if package == "torch" else f"rm -f {venv}/.synced-*"), remedy
        assert ("EXTRAS=" in command) == (package == "torch")
        lines = [line for line in _make_dry_run(command).splitlines() if " sync --frozen" in line]
        assert len(lines) == 1, remedy
        assert f"{package}==" in _uv_dry_run(lines[0], tmp_path / venv)


@pytest.mark.parametrize(("framework", "wanted"), [("tensorflow", "nvidia-cudnn-cu12"), ("torch", "torch==")])
def test_the_provisioned_remedy_reaches_the_roles_uv_sync(
    framework: str, wanted: str, tmp_path: Path
) -> None:
    """The make command with -n: its variable reaches ansible-playbook as the shell splits it; then the role's
    uv argv with that variable, run with --dry-run: the lock installs the framework's GPU build."""
    project = _project(tmp_path, makefile=False)
    remedy = environment.install_gpu(framework, "x", project / ".venv", {})
    command = remedy.removesuffix(" (from your checkout)")
    printed = _make_dry_run(f"{command} ANSIBLE_VENV={tmp_path}/a")
    line = next(x for x in printed.splitlines() if "ansible-playbook site.yml" in x)
    words = shlex.split(line.split("&&")[-1])
    flags = [words[i + 1] for i, w in enumerate(words) if w == "-e"]
    key, _, value = flags[-1].partition("=")  # the remedy's, after the Makefile's own
    assert key in ("python_env_gpu_extra", "python_env_extras"), (line, flags)
    argv = _python_env_argv(tmp_path, {key: True if value == "true" else value})
    assert wanted.split("=")[0].startswith("torch") == ("--extra=torch" in argv)
    assert wanted in _uv_dry_run(shlex.join(argv), tmp_path)


def test_the_image_remedy_builds_the_gpu_set() -> None:
    remedy = environment.install_gpu("tensorflow", "2.21.0", Path("/opt/venv"), {"KW_VARIANT": "cpu"})
    command = remedy.split(" (on the host)")[0]
    assert command == "make image VARIANT=gpu"
    printed = _make_dry_run(command)
    assert "VARIANT=gpu" in shlex.split(printed) and "docker/build.sh" in printed  # as the shell reads it
    extras = subprocess.run(["python3", "gpu_doctor/rules.py", "extras", "--set", "gpu"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert extras == rules.extras_for(True)


@pytest.mark.slow
def test_the_remedy_outside_the_lock_is_uv_pip(tmp_path: Path) -> None:
    """An environment not made from the lock: `uv pip install --python ...` (never pip into a uv one); its dry
    run resolves from PyPI into a fresh venv."""
    subprocess.run([UV, "venv", "-q", "--python", "/usr/bin/python3", tmp_path / "venv"], check=True)
    remedy = environment.install_gpu("tensorflow", "2.21.0", tmp_path / "venv", {})
    assert remedy.startswith("uv pip install --python ") and "'tensorflow[and-cuda]==2.21.0'" in remedy
    words = shlex.split(remedy)
    words[0] = UV
    proc = subprocess.run([*words, "--dry-run"], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "nvidia-cudnn-cu12" in proc.stderr and "jax-cuda12-plugin" in proc.stderr


def test_the_known_broken_remedy_runs(tmp_path: Path) -> None:
    """Compute capability 12.x / 10.x with TensorFlow: the remedy's command, KERAS_BACKEND=jax make doctor."""
    remedy = rules.known_broken("tensorflow", "2.21.0", "12.0", ["sm_89", "compute_90"])["remedy"]
    command = "KERAS_BACKEND=jax make doctor"
    assert f"check it: {command};" in remedy and "pip install" not in remedy
    printed = _make_dry_run(f"{command} RUN_VENV={tmp_path}/v UV=/bin/true")
    assert "-m smoke_tests doctor" in printed
    assert rules.known_broken("tensorflow", "2.21.0", "10.0", ["sm_89", "compute_90"])["remedy"] == remedy
