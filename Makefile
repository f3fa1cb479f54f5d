# One place for every routine command. `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install study test test-all lint bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install ablate with the tested versions

study: $(STAMP)  ## the main job: the dropout study on MNIST (fetches MNIST on first use)
	$(BIN)/ablate study studies/dropout.toml

test: $(STAMP)  ## the test suite (slow tests excluded)
	$(BIN)/python -m pytest

test-all: $(STAMP)  ## every test, the slow ones included
	$(BIN)/python -m pytest -m ''

lint: $(STAMP)  ## ruff and mypy
	$(BIN)/ruff check ablate serve tests benchmarks
	$(BIN)/mypy ablate serve

bench: $(STAMP)  ## training and serving benchmarks (quiet machine please)
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/serve_load.py
	$(BIN)/python benchmarks/serve_abuse.py

clean:  ## remove the virtual environment and caches (not runs/ or the MNIST cache)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
