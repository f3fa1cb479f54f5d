# One place for every routine command. `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# TORCH_INDEX: an extra package index for torch, e.g. PyTorch's CPU-only wheels
#   make install TORCH_INDEX=https://download.pytorch.org/whl/cpu
# (without it pip takes torch from PyPI: on Linux the CUDA build, several GB; see
# constraints.txt). Changing it later: `make clean` first.
TORCH_INDEX ?=
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt \
	$(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: help install install-run study test test-all lint bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# What running studies and the service needs, nothing more (no test or lint tools).
$(RUN_STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $@

# The development tools and the optional extras the tests cover (Ray, pandas, the
# trackers: MLflow, TensorBoard, pyarrow).
$(DEV_STAMP): $(RUN_STAMP)
	$(PIP) -e '.[dev,ray,trackers]'
	touch $@

install-run: $(RUN_STAMP)  ## .venv with what `make study` needs (the tested versions)

install: $(DEV_STAMP)  ## .venv with everything: tests, lint, Ray, pandas, MLflow, TensorBoard

study: $(RUN_STAMP)  ## the main job: the dropout study on MNIST (fetches MNIST on first use)
	$(BIN)/ablate study studies/dropout.toml

test: $(DEV_STAMP)  ## the test suite (slow tests excluded)
	$(BIN)/python -m pytest

test-all: $(DEV_STAMP)  ## every test, the slow ones included
	$(BIN)/python -m pytest -m ''

lint: $(DEV_STAMP)  ## ruff and mypy
	$(BIN)/ruff check ablate serve tests benchmarks
	$(BIN)/mypy ablate serve

bench: $(DEV_STAMP)  ## benchmarks (quiet machine please)
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/stats_calibration.py
	$(BIN)/python benchmarks/ray_scaling.py
	$(BIN)/python benchmarks/serve_load.py
	$(BIN)/python benchmarks/serve_abuse.py

clean:  ## remove the virtual environment and caches (not runs/ or the MNIST cache)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
