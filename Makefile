# cets — two commands set everything up: `make run` and `make test`.
# The interpreter: Python >= 3.12 (Mesa 3.5 needs it). Found on PATH or in pyenv; override with PYTHON=...
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= $(shell for c in python3.13 python3.12 python3 \
	$$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python 2>/dev/null | sort -rV); do \
	  p=$$(command -v $$c 2>/dev/null) || continue; \
	  $$p -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null && { echo $$p; break; }; \
	done)
SCENARIO ?= experiments/scenarios/baseline.toml
OUT ?= results/baseline

.PHONY: install run test bench clean viz

$(BIN)/cets: pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "error: no Python >= 3.12 found (PATH or pyenv); set PYTHON=/path/to/python3.12" >&2; exit 1; fi
	@echo "using $(PYTHON) ($$($(PYTHON) --version))"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

install: $(BIN)/cets

run: install
	$(BIN)/cets run $(SCENARIO) --out $(OUT)

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/bench.py

# the browser page on 127.0.0.1 (port printed; e.g. make viz VIZ_ARGS="--port 9000")
viz: install
	$(BIN)/cets viz $(VIZ_ARGS)

# every figure of results/figures/ (PNG, SVG and its data as CSV) from the experiments' results in
# results/sweeps/, running the sweeps that are missing (all cores; e.g. FIGURES_ARGS="--workers 4")
.PHONY: figures
figures: install
	$(BIN)/cets figures --experiments experiments --results results/sweeps --out results/figures $(FIGURES_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
