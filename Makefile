# robodata: `make demo` runs the whole thing on embedded defaults; `make test` runs the test suite.
# Both set up what they need on a fresh machine: Debian packages (headless MuJoCo rendering, Chromium for
# the UI test), Python 3.12, the .venv with pinned dependencies.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APT_RUNTIME := libegl1 libegl-mesa0 libgl1
APT_TEST := chromium postgresql prometheus prometheus-pushgateway
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
export GX_ANALYTICS_ENABLED ?= false
export HF_HUB_OFFLINE ?= 1
export RAY_USAGE_STATS_ENABLED ?= 0

# Python 3.12: pyenv's 3.12.1 where pyenv manages it, else python3.12 on PATH.
PYTHON312 := $(shell (PYENV_VERSION=3.12.1 python3.12 -c 'import sys; print(sys.executable)' 2>/dev/null) || (python3.12 -c 'import sys; print(sys.executable)' 2>/dev/null))

.PHONY: demo test lint ui bench setup setup-test apt-runtime apt-test clean

demo: setup
	$(VENV)/bin/robodata demo

test: setup setup-test lint
	$(PY) -m pytest -q -p no:cacheprovider tests

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

ui: setup
	$(VENV)/bin/robodata ui

bench: setup
	$(PY) benchmarks/run_all.py

setup: apt-runtime $(STAMP)

setup-test: apt-test

$(STAMP): pyproject.toml
	@test -n "$(PYTHON312)" || { echo "Python 3.12 not found (install python3.12 or pyenv 3.12.1)"; exit 1; }
	@echo "creating $(VENV) with $(PYTHON312)"
	test -x $(PY) || $(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	set -o pipefail; $(PY) -m pip install -q -e '.[all,dev]' 2>&1 | { grep -v "^WARNING: Location" || true; }
	touch $(STAMP)

# Install the Debian packages in $(1) that are missing (apt-get update first; sudo when not root).
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

apt-runtime:
	$(call apt_install,$(APT_RUNTIME))

apt-test:
	$(call apt_install,$(APT_TEST))

clean:
	rm -rf .robodata
