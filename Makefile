# MLIP-AutoPipe entry points. `make run` and `make test` set everything up first (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.setup-done
CORES ?= 2
CONFIG ?= config/config.yaml
RUN_DIR ?= .
PYTEST_ARGS ?=
TENSORPOTENTIAL := tensorpotential==0.6.2.1

export PATH := $(BIN):$(PATH)

# Debian packages the tests and local runs use (Slurm for the scale-out test).
APT_PACKAGES := slurm-wlm munge

.PHONY: setup system run dry-run status report test lint clean-results

setup: system $(STAMP)

# Installs only what is missing; without root it says what to install instead.
system:
	@missing=""; for package in $(APT_PACKAGES); do \
		dpkg -s $$package >/dev/null 2>&1 || missing="$$missing $$package"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else echo "missing Debian packages:$$missing (sudo apt-get install$$missing)"; fi

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip 'setuptools>=77' wheel
	$(BIN)/python -m pip install -q -r requirements.txt
	# tensorpotential's declared dependencies pull CUDA wheels and a newer numpy: install it alone.
	$(BIN)/python -m pip install -q --no-deps $(TENSORPOTENTIAL)
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m pip check
	touch $@

run: setup
	$(BIN)/snakemake --snakefile $(abspath Snakefile) --directory $(RUN_DIR) \
		--profile $(abspath profiles/local) --cores $(CORES) --configfile $(abspath $(CONFIG))

dry-run: setup
	$(BIN)/snakemake --snakefile $(abspath Snakefile) --directory $(RUN_DIR) \
		--cores $(CORES) --configfile $(abspath $(CONFIG)) -n

status: setup
	$(BIN)/mlip-autopipe-status $(RUN_DIR)

report: setup
	$(BIN)/snakemake --snakefile $(abspath Snakefile) --directory $(RUN_DIR) \
		--configfile $(abspath $(CONFIG)) --report $(abspath $(RUN_DIR))/report.html

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check lib scripts tests
	$(BIN)/mypy lib
	$(BIN)/snakemake --lint

clean-results:
	rm -rf results logs .snakemake
