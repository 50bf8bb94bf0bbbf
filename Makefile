# Two commands for a fresh machine: `make up` (the stack, trading) and `make test`.
# Each creates what it needs: the virtualenv in .venv, and for the tests mosquitto.
#
# `make up` installs only what the stack runs on (the project, and the embedded
# broker it falls back to without mosquitto); `make test` and `make lint` add
# the development tools. Options for `tickbus up` go in ARGS:
#   make up ARGS='--port 18830 --rate 200'

VENV ?= .venv
PYTHON ?= python3
ARGS ?=
TEST_WORKERS ?= 2
RUNTIME := $(VENV)/.installed-runtime
# The name it had when every target installed the dev tools, so existing
# virtualenvs are not installed again.
DEV := $(VENV)/.installed

.PHONY: up test lint system-deps clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip

$(RUNTIME): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --quiet -e '.[embedded-broker]'
	touch $@

# The dev extra includes the runtime, so it counts as installing that too.
$(DEV): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $@ $(RUNTIME)

## up: run the whole stack on this machine with a live view (Ctrl-C stops it);
## options for `tickbus up` in ARGS, e.g. make up ARGS='--port 18830'
up: $(RUNTIME)
	$(VENV)/bin/tickbus up $(ARGS)

## test: run the test suite against a real mosquitto on a free port, in
## TEST_WORKERS processes (pytest-xdist; each has a broker of its own)
test: $(DEV) system-deps
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS)

## lint: ruff and mypy, as CI runs them
lint: $(DEV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

system-deps:
	scripts/ensure-mosquitto.sh
	scripts/ensure-node.sh
	scripts/ensure-chromium.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
