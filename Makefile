# keras-workstation: `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_SYSTEM ?= /usr/bin/python3
UV_VERSION    ?= $(shell sed -n 's/^uv-version *= *"\(.*\)"/\1/p' pyproject.toml)
VENV          := .venv
PY            := $(VENV)/bin/python
# The main job's environment (smoke-test, doctor): the lock's runtime dependencies only, as the image and
# Ansible's python_env install them (`--no-dev`); the dev tools (ruff, ansible, selenium, ...) stay in .venv.
RUN_VENV      := .venv-run
UV            ?= $(shell command -v uv 2>/dev/null || echo .cache/uv/bin/uv)
# Its extras fit the machine: the GPU set (TensorFlow's CUDA wheels, JAX's CUDA plugin) where the GPU doctor's
# hardware rule sees an NVIDIA GPU, else the small CPU set (gpu_doctor/rules.toml [extras]; standard library only,
# before any environment exists). EXTRAS="jax gpu" (names of pyproject.toml's extras) overrides. The stamp is
# keyed on the extras, so a change re-syncs (and `uv sync` removes what the other set had).
ifeq ($(origin EXTRAS),undefined)
EXTRAS := $(shell $(PYTHON_SYSTEM) gpu_doctor/rules.py extras)
endif
SETUP_EXTRAS  ?= jax
stamp_of       = .synced-$(or $(subst $(eval) ,+,$(strip $(1))),none)
RUN_STAMP     := $(RUN_VENV)/$(call stamp_of,$(EXTRAS))
SETUP_STAMP   := $(VENV)/$(call stamp_of,$(SETUP_EXTRAS))
export UV_PYTHON_DOWNLOADS := never

LEVEL    ?= quick
BASELINE ?=
DATA     ?=
SMOKE_ARGS ?=
# $(call q,VALUE): VALUE as one shell word, whatever it holds ('/tmp/a b' stays one argument, and
# '/x || touch /tmp/owned' runs nothing): single quotes, each ' inside written '\''.
q = '$(subst ','\'',$1)'
comma := ,
PYTEST_ARGS ?=
CALIBRATE_ARGS ?=

.PHONY: help setup env test lint bench calibrate smoke-test doctor gpu-report clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  \033[1m%-18s\033[0m %s\n", $$1, $$2}'

# --- Environment: everything installs from uv.lock ---------------------------
.cache/uv/bin/uv:
	@echo "uv not found on PATH: bootstrapping uv $(UV_VERSION) into .cache/uv"
	$(PYTHON_SYSTEM) -m venv .cache/uv || { echo "error: need 'uv' or python3-venv (apt-get install python3-venv)" >&2; exit 2; }
	.cache/uv/bin/pip install -q "uv==$(UV_VERSION)"

# The loader hook's files are copied into the environment (pyproject.toml's force-include): a change re-syncs.
HOOK_FILES    := gpu_doctor/preload_hook.py gpu_doctor/keras_workstation_preload.pth

$(SETUP_STAMP): uv.lock pyproject.toml $(HOOK_FILES) | $(UV)
	@rm -f $(VENV)/.synced*
	$(UV) sync --frozen --python $(PYTHON_SYSTEM) $(addprefix --extra ,$(SETUP_EXTRAS)) --group dev
	@touch $@

setup: $(SETUP_STAMP) ## Create .venv from uv.lock (hashes checked), with the dev tools (SETUP_EXTRAS="jax gpu": +CUDA)

$(RUN_STAMP): uv.lock pyproject.toml $(HOOK_FILES) | $(UV)
	@rm -f $(RUN_VENV)/.synced*
	@$(PYTHON_SYSTEM) gpu_doctor/rules.py extras --why >/dev/null; echo "$(RUN_VENV): extras $(or $(EXTRAS),none)"
	UV_PROJECT_ENVIRONMENT=$(RUN_VENV) $(UV) sync --frozen --no-dev --python $(PYTHON_SYSTEM) $(addprefix --extra ,$(EXTRAS))
	@touch $@

env: $(RUN_STAMP) ## The environment of smoke-test and doctor (.venv-run): the GPU set with a GPU (EXTRAS="jax gpu")

# --- Checks --------------------------------------------------------------------
test: setup ## Run the project's own tests (what CI runs)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup ## ruff, ansible-lint (production profile), hadolint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	cd ansible && ../$(VENV)/bin/ansible-lint --profile production
	$(VENV)/bin/hadolint docker/Dockerfile

bench: setup ## Benchmarks: tutorial code vs our workloads, smoke test old vs new, make doctor -> reports/bench/
	$(PY) -m benchmarks

calibrate: setup ## Quick workloads over seeds 0-9 and 42 on every dataset here, at its real size -> benchmarks/results/calibration/
	$(PY) -m benchmarks.calibrate $(CALIBRATE_ARGS)

smoke-test: $(RUN_STAMP) ## Smoke tests and speed checks (LEVEL=quick|full, BASELINE=report.json, DATA=mnist-idx-dir, SMOKE_ARGS=...)
	$(RUN_VENV)/bin/python -m smoke_tests --level $(call q,$(LEVEL)) $(if $(BASELINE),--baseline $(call q,$(BASELINE))) $(if $(DATA),--data $(call q,$(DATA))) $(SMOKE_ARGS)

doctor: $(RUN_STAMP) ## The layered GPU diagnosis alone (hardware .. compute), in seconds: what is broken and what to run
	$(RUN_VENV)/bin/python -m smoke_tests doctor

GPU_REPORT_ARGS ?=
gpu-report: $(RUN_STAMP) ## On a GPU machine, <= 8 min: doctor, quick + full smoke test (JAX, TF) -> benchmarks/results/<gpu>/
	$(RUN_VENV)/bin/python -m benchmarks.gpu_report $(GPU_REPORT_ARGS)

clean: ## Remove runs/, reports/ and caches (keeps .venv)
	rm -rf runs reports .pytest_cache .ruff_cache

# --- Container image (issue 6: docker/, notebooks/, tests/image, tests/notebooks) ----------------------------
# The engine: docker when a daemon answers, else podman with runc (crun fails on hybrid cgroups).
VARIANT      ?= gpu
BASE_IMAGE   ?=
IMAGE        ?= localhost/keras-workstation:$(VARIANT)
JUPYTER_PORT ?= 8888
CONTAINER_ENGINE = $(shell if docker info >/dev/null 2>&1; then echo docker; else echo podman --runtime runc; fi)

.PHONY: image jupyter image-test notebooks

image: ## Build the image (VARIANT=gpu|cpu, BASE_IMAGE=..., or local-bookworm offline) -> reports/image/build.json
	VARIANT=$(call q,$(VARIANT)) BASE_IMAGE=$(call q,$(BASE_IMAGE)) TAG=$(call q,$(IMAGE)) ENGINE="$(CONTAINER_ENGINE)" docker/build.sh

jupyter: ## Start JupyterLab from IMAGE with this directory mounted at /work; prints the URL with its token
	IMAGE=$(call q,$(IMAGE)) JUPYTER_PORT=$(call q,$(JUPYTER_PORT)) ENGINE="$(CONTAINER_ENGINE)" docker/run-jupyter.sh

image-test: setup ## Build the CPU image (local Debian base, podman) and test it: auth, user, health, browser
	$(PY) -m pytest tests/image $(PYTEST_ARGS)

notebooks: setup ## Build the notebooks' .ipynb (build/notebooks) from their jupytext sources in notebooks/
	@mkdir -p build/notebooks
	for src in notebooks/*.py; do $(VENV)/bin/jupytext --quiet --to ipynb --output "build/notebooks/$$(basename "$${src%.py}").ipynb" "$$src"; done
	@ls build/notebooks

# --- Provisioning (issue 5: ansible/, tests/ansible, scripts/dummy-nvidia-repo.sh) ---------------------------
# Ansible comes from uv.lock's dev group, in its own small environment: provisioning needs no TensorFlow.
ANSIBLE_VENV     := .cache/ansible-venv
HOSTS            ?= localhost
# Local runs: the user who ran make (also under sudo). Remote runs: the role default (the SSH user).
WORKSTATION_USER ?= $(if $(filter localhost,$(HOSTS)),$(or $(SUDO_USER),$(USER)))
# auto: ask for the sudo password unless this is a local run as root; no: passwordless sudo.
BECOME_ASK       ?= auto
PROVISION_ARGS   ?=
PROVISION_CMD = cd ansible && ../$(ANSIBLE_VENV)/bin/ansible-playbook site.yml \
	$(if $(filter localhost,$(HOSTS)),,-i $(call q,$(HOSTS)$(comma))) \
	$(if $(WORKSTATION_USER),-e $(call q,workstation_user=$(WORKSTATION_USER))) -e python_env_uv_version=$(UV_VERSION) \
	$(if $(filter no,$(BECOME_ASK)),,$(if $(and $(filter localhost,$(HOSTS)),$(filter 0,$(shell id -u))),,--ask-become-pass)) \
	$(PROVISION_ARGS)

.PHONY: provision provision-check

# Ansible is installed from the lock, so the controller's Python must satisfy requires-python too (Ubuntu 22.04's
# python3 is 3.10): say so, instead of uv's resolver error.
PYTHON_SUPPORTED = $(PYTHON_SYSTEM) -c 'import re, sys; \
	spec = re.search(r"requires-python\s*=\s*\"([^\"]+)\"", open("pyproject.toml").read()).group(1); \
	ops = {">=": "__ge__", "<": "__lt__", "<=": "__le__", ">": "__gt__", "==": "__eq__", "~=": "__ge__", "!=": "__ne__"}; \
	ok = all(getattr(sys.version_info[:2], ops[op])(tuple(map(int, v.split(".")[:2]))) \
	         for op, v in re.findall(r"(>=|<=|~=|==|!=|<|>)\s*([0-9.]+)", spec)); \
	ok or sys.exit(f"error: make provision needs Python {spec} for Ansible from uv.lock; {sys.executable} is " \
	  f"{sys.version.split()[0]}. Ubuntu 22.04: install python3.12 and python3.12-venv (deadsnakes PPA), then " \
	  "make provision PYTHON_SYSTEM=/usr/bin/python3.12 PROVISION_ARGS=\"-e python_env_python=/usr/bin/python3.12\"")'

$(ANSIBLE_VENV)/.synced: uv.lock pyproject.toml | $(UV)
	@$(PYTHON_SUPPORTED) || exit 2
	UV_PROJECT_ENVIRONMENT=$(ANSIBLE_VENV) $(UV) sync --frozen --only-group dev --python $(PYTHON_SYSTEM)
	@touch $@

provision: $(ANSIBLE_VENV)/.synced ## Provision this machine, or HOSTS=h1,h2: driver, Docker, toolkit, venv, JupyterLab
	$(PROVISION_CMD)

provision-check: $(ANSIBLE_VENV)/.synced ## What `make provision` would change (--check --diff); changes nothing
	$(PROVISION_CMD) --check --diff

# --- Offline assets (issue 3: workloads/data/assets.py, workloads/data/assets.toml) ------------------------------------
ASSETS_BUNDLE ?= keras-assets

.PHONY: assets-fetch assets-install

assets-fetch: setup ## Download MNIST, ImageNet weights, transfer datasets into ASSETS_BUNDLE and pack a .tar
	$(PY) -m workloads assets fetch --bundle $(call q,$(ASSETS_BUNDLE))
	$(PY) -m workloads assets pack --bundle $(call q,$(ASSETS_BUNDLE)) --archive $(call q,$(ASSETS_BUNDLE).tar)

assets-install: setup ## Verify ASSETS_BUNDLE.tar and install it into the Keras cache ($KERAS_HOME or ~/.keras)
	$(PY) -m workloads assets install --archive $(call q,$(ASSETS_BUNDLE).tar)

# --- Fleet (issue 22: ansible/fleet.yml, ansible/roles/fleet_smoke, fleet/) ---------------------------------
# Ansible runs the doctor and the smoke test on every host of INVENTORY with the toolkit `make provision`
# installed there (as the SSH user, never root), fetches the reports, and `python -m fleet` compares the hosts.
# Installs nothing on the hosts. The variables reach the command through the environment, unexpanded
# ($(value ...)), so spaces, quotes and `$` in them stay what they are.
INVENTORY  ?=
LIMIT      ?=
FLEET_ARGS ?=

.PHONY: fleet-smoke

fleet-smoke: export FLEET_INVENTORY = $(value INVENTORY)
fleet-smoke: export FLEET_LEVEL = $(value LEVEL)
fleet-smoke: export FLEET_LIMIT = $(value LIMIT)
fleet-smoke: export FLEET_BASELINE = $(value BASELINE)
fleet-smoke: $(ANSIBLE_VENV)/.synced ## Smoke-test every host of INVENTORY=FILE via Ansible (LEVEL, LIMIT=pattern, BASELINE=old/fleet.json) -> reports/fleet/<timestamp>/
	@[ -n "$$FLEET_INVENTORY" ] || { echo "error: make fleet-smoke needs INVENTORY=FILE (an Ansible inventory of provisioned hosts)" >&2; exit 2; }
	$(ANSIBLE_VENV)/bin/python -m fleet --inventory "$$FLEET_INVENTORY" --level "$$FLEET_LEVEL" \
		$${FLEET_LIMIT:+--limit "$$FLEET_LIMIT"} $${FLEET_BASELINE:+--baseline "$$FLEET_BASELINE"} \
		$(if $(filter-out 0 no false,$(REQUIRE_GPU)),--require-gpu) $(FLEET_ARGS)
