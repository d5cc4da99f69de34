# One command each: `make dev` runs the platform on the embedded default, `make test` runs every check.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install dev test lint typecheck bench services clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dev: install
	$(VENV)/bin/conveyor dev

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

# Tests wait on workers and timers far more than they compute: three at a time on two cores.
TEST_WORKERS ?= 3

test: lint typecheck
	$(VENV)/bin/pytest -n $(TEST_WORKERS)

bench: install
	$(PY) bench/throughput.py

services:
	bash .ci/services.sh

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
