"""Which Python environment the doctor runs in, and the command that installs a framework's GPU libraries (or
a package the lock provides) into that environment: every remedy for the environment comes from here, so it
works where the user runs.

- `CHECKOUT/.venv-run` (a Makefile beside its pyproject.toml; made by make smoke-test, make doctor):
  `make env EXTRAS="jax gpu"`
- `CHECKOUT/.venv` (make setup): `make setup SETUP_EXTRAS="jax gpu"`
- a project folder without a Makefile (Ansible's python_env, /opt/keras-workstation/.venv):
  `make provision PROVISION_ARGS="-e python_env_gpu_extra=true"`, from the checkout
- the image (`KW_VARIANT` is set): `make image VARIANT=gpu`
- anything else: `uv pip install --python PYTHON 'tensorflow[and-cuda]==X' 'jax[cuda12]'`

Never `pip install` into an environment made from the lock: the next `uv sync --frozen` removes what it added.
The extras come from rules.toml [extras] (the GPU set), as the Makefile, Ansible and the image read them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from gpu_doctor import rules

PROJECT = "keras-workstation"
# What each framework's GPU build needs from the lock: the GPU set, or (PyTorch, whose extra conflicts with
# the gpu extra in pyproject.toml) the CPU set with the torch extra.
TORCH_EXTRA = "torch"
# The pip requirement of a framework's GPU build, for an environment that is not made from the lock.
PIP_GPU = {"tensorflow": "tensorflow[and-cuda]=={v}", "jax": "jax[cuda12]=={v}", "torch": "torch=={v}"}


def project_dir(prefix: Path) -> Path | None:
    """The project folder an environment belongs to: its parent, when that holds this project's pyproject."""
    try:
        text = (prefix.parent / "pyproject.toml").read_text()
    except OSError:
        return None
    return prefix.parent if re.search(rf'^name\s*=\s*"{PROJECT}"', text, re.MULTILINE) else None


def kind(prefix: Path, env: Mapping[str, str]) -> str:
    """run | dev | provisioned | image | other (see the module's table)."""
    if env.get("KW_VARIANT"):
        return "image"
    project = project_dir(prefix)
    if project is None:
        return "other"
    if not (project / "Makefile").is_file():
        return "provisioned"
    return "dev" if prefix.name == ".venv" else "run"


def extras_for(framework: str) -> list[str]:
    if framework == "torch":
        return [*dict.fromkeys([*rules.extras_for(False), TORCH_EXTRA])]
    return rules.extras_for(True)


def install(package: str, prefix: Path, env: Mapping[str, str]) -> str:
    """The command that brings ``package`` back into the environment at ``prefix``, its GPU set unchanged: one
    of the lock's own dependencies (nvidia-ml-py, TensorFlow; JAX, in both sets) or PyTorch (the torch
    extra, with the CPU set: it conflicts with the GPU set). An environment made from the lock is synced from
    it again; any other gets `uv pip install`."""
    torch = package == TORCH_EXTRA
    extras = " ".join(extras_for(TORCH_EXTRA))
    where = kind(prefix, env)
    resync = f"rm -f {prefix.name}/.synced-* && "  # its stamp says it is up to date: it is not
    if where == "run":
        return f'make env EXTRAS="{extras}"' if torch else f"{resync}make env"
    if where == "dev":
        return f'make setup SETUP_EXTRAS="{extras}"' if torch else f"{resync}make setup"
    if where == "provisioned":
        flag = f' PROVISION_ARGS="-e python_env_extras={extras.replace(" ", ",")}"' if torch else ""
        return f"make provision{flag} (from your checkout)"
    if where == "image" and not torch:
        return "make image (on the host), then docker run ..."
    return f"uv pip install --python {prefix / 'bin' / 'python'} '{package}'"


def install_gpu(framework: str, version: str | None, prefix: Path, env: Mapping[str, str]) -> str:
    """The command that installs ``framework``'s GPU libraries into the environment at ``prefix``."""
    extras = " ".join(extras_for(framework))
    where = kind(prefix, env)
    if where == "run":
        return f'make env EXTRAS="{extras}"'
    if where == "dev":
        return f'make setup SETUP_EXTRAS="{extras}"'
    if where == "provisioned":
        flag = (
            "python_env_gpu_extra=true"
            if framework != "torch"
            else f"python_env_extras={extras.replace(' ', ',')}"
        )
        return f'make provision PROVISION_ARGS="-e {flag}" (from your checkout)'
    if where == "image":
        return "make image VARIANT=gpu (on the host), then docker run --gpus all ..."
    spec = PIP_GPU.get(framework, framework + "=={v}").format(v=version or "")
    spec = spec.removesuffix("==")
    extra = " 'jax[cuda12]'" if framework == "tensorflow" else ""
    return f"uv pip install --python {prefix / 'bin' / 'python'} '{spec}'{extra}"
