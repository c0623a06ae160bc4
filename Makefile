# robodata: `make demo` runs the whole thing on embedded defaults; `make test` runs the test suite.
# Both set up what they need on a fresh machine: Debian packages (headless MuJoCo rendering, Chromium for
# the UI test), Python 3.12, the .venv with pinned dependencies.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The install steps (Debian packages, Python 3.12, the venv) are deploy/install.sh, which the Dockerfile runs too.
INSTALL := deploy/install.sh
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
export GX_ANALYTICS_ENABLED ?= false
export HF_HUB_OFFLINE ?= 1
export RAY_USAGE_STATS_ENABLED ?= 0

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

$(STAMP): pyproject.toml $(INSTALL)
	bash $(INSTALL) venv --extras all,dev --venv $(VENV)

apt-runtime:
	@bash $(INSTALL) apt runtime

apt-test:
	@bash $(INSTALL) apt test

clean:
	rm -rf .robodata
