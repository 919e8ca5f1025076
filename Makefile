# depi — setup, main job and tests. Everything installs into the project-local `.venv` (Python 3.11) and,
# for the lerobot interop tests, `.venv-lerobot` (Python 3.12, lerobot 0.6.x).
PYTHON ?= python3.11
PYTHON312 ?= $(shell command -v python3.12 >/dev/null 2>&1 && python3.12 -c 'import sys; print(sys.executable)' 2>/dev/null || ls /root/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | head -n1)
VENV := .venv
LEROBOT_VENV := .venv-lerobot
OPENPI_VENV := .venv-openpi
PY := $(VENV)/bin/python

.PHONY: setup system-deps lerobot-env openpi-env train demo test test-fast clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# torch first, pinned: this version is the machine's CPU build (see docs/install.md)
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e '.[test,video,serve,sim,viz,annotate]'
	touch $@

setup: system-deps $(VENV)/.installed

system-deps:
	bash scripts/install_system_deps.sh

$(LEROBOT_VENV)/.installed: scripts/lerobot_requirements.txt
	test -n "$(PYTHON312)" || { echo "python3.12 not found: the lerobot interop environment needs Python >= 3.12"; exit 1; }
	$(PYTHON312) -m venv $(LEROBOT_VENV)
	$(LEROBOT_VENV)/bin/pip install -q --upgrade pip
	$(LEROBOT_VENV)/bin/pip install -q -r scripts/lerobot_requirements.txt
	touch $@

lerobot-env: $(LEROBOT_VENV)/.installed

# The real openpi-client (numpy < 2) for depi-serve's wire-compatibility test.
$(OPENPI_VENV)/.installed: scripts/openpi_client_requirements.txt
	$(PYTHON) -m venv $(OPENPI_VENV)
	$(OPENPI_VENV)/bin/pip install -q -r scripts/openpi_client_requirements.txt
	touch $@

openpi-env: $(OPENPI_VENV)/.installed

# README's first command: the main job on the embedded default.
train: setup
	$(VENV)/bin/depi-train

# README's second command: the whole test suite, interop tests against the real lerobot included.
test: setup lerobot-env openpi-env
	DEPI_REQUIRE_LEROBOT=1 DEPI_REQUIRE_OPENPI=1 $(PY) -m pytest

# Without the slow and interop tests.
test-fast: setup
	$(PY) -m pytest -m "not slow and not interop"

clean:
	rm -rf $(VENV) $(LEROBOT_VENV) $(OPENPI_VENV) outputs
