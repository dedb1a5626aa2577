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

export PATH := $(BIN):$(PATH)

.PHONY: setup run dry-run test lint clean-results

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip 'setuptools>=77' wheel
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m pip check
	touch $@

run: setup
	$(BIN)/snakemake --snakefile $(abspath Snakefile) --directory $(RUN_DIR) \
		--profile $(abspath profiles/local) --cores $(CORES) --configfile $(abspath $(CONFIG))

dry-run: setup
	$(BIN)/snakemake --snakefile $(abspath Snakefile) --directory $(RUN_DIR) \
		--cores $(CORES) --configfile $(abspath $(CONFIG)) -n

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check lib scripts tests
	$(BIN)/mypy lib
	$(BIN)/snakemake --lint

clean-results:
	rm -rf results logs .snakemake
