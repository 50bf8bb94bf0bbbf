# Two commands for a fresh machine: `make up` (the stack, trading) and `make test`.
# Each creates what it needs: the virtualenv in .venv, and for the tests mosquitto.

VENV ?= .venv
PYTHON ?= python3
INSTALLED := $(VENV)/.installed

.PHONY: up test lint system-deps clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $@

## up: run the whole stack on this machine with a live view (Ctrl-C stops it)
up: $(INSTALLED)
	$(VENV)/bin/tickbus up

## test: run the test suite against a real mosquitto on a free port
test: $(INSTALLED) system-deps
	$(VENV)/bin/python -m pytest

## lint: ruff and mypy, as CI runs them
lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

system-deps:
	scripts/ensure-mosquitto.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
