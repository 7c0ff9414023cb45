# The whole set-up on a fresh machine: `make run` or `make test`. Needs python3 (3.11+) and pip.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_PERSONS ?= 2000
# Where to serve: the settings MEDGW_HOST and MEDGW_PORT (gateway/config.py, default
# 127.0.0.1:8000) decide, unless given on the command line: `make run PORT=8731`. HOST and PORT
# from the environment are ignored (zsh sets HOST to the machine's name).
SERVE_AT := $(if $(filter command line,$(origin HOST)),--host $(HOST)) \
	$(if $(filter command line,$(origin PORT)),--port $(PORT))

.PHONY: run test check format bench clean-var

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@ $(VENV)/.installed

## Start the embedded PostgreSQL, migrate, load demo data into an empty database, serve; a
## "ready:" line (with the command that signs a token) follows once /readyz answers.
run: $(VENV)/.installed
	$(BIN)/medgw $(strip serve $(SERVE_AT) --demo-persons $(DEMO_PERSONS))

## Install the dev extras and run the whole suite against a throwaway PostgreSQL.
test: $(VENV)/.installed-dev
	$(BIN)/pytest

## Lint, format check and strict typing.
check: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Benchmarks (on demand, not part of the suite).
bench: $(VENV)/.installed-dev
	$(BIN)/python bench/settle.py

clean-var:
	rm -rf var
