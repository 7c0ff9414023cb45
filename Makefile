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

.PHONY: run test check format bench clean-var browser wrk lock bench-settle

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Every machine installs the same versions: the lock files pin the whole tree (`make lock`).
$(VENV)/.installed: pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml requirements-dev.lock | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements-dev.lock -e '.[dev]'
	touch $@ $(VENV)/.installed

## Re-pin requirements.lock and requirements-dev.lock after pyproject.toml changed (needs uv).
lock: | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip compile pyproject.toml -q --python-version 3.11 --no-header -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml -q --python-version 3.11 --no-header --extra dev \
		-o requirements-dev.lock

## Start the embedded PostgreSQL, migrate, load demo data into an empty database, serve; a
## "ready:" line (with the command that signs a token) follows once /readyz answers.
run: $(VENV)/.installed
	$(BIN)/medgw $(strip serve $(SERVE_AT) --demo-persons $(DEMO_PERSONS))

## Install the dev extras and run the whole suite against a throwaway PostgreSQL.
# Two processes (pytest-xdist; more where there are more cores, up to 4), each with its own
# embedded PostgreSQL; the tests of a module stay in one process (its module fixtures).
test: $(VENV)/.installed-dev tests/http/node_modules/.installed browser wrk
	$(BIN)/pytest -n auto --maxprocesses 4 --dist loadfile

# Browser tests use Debian's Chromium (and CJK fonts), installed as root where apt-get exists;
# otherwise those tests are skipped and say so.
browser:
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian's chromium for the browser tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				--no-install-recommends chromium fonts-noto-cjk >/dev/null \
			|| echo "chromium not installed: the browser tests will be skipped"; \
		else echo "no chromium and no root apt-get: the browser tests will be skipped"; fi; }

# `make bench` drives its point lookups over HTTP with Debian's wrk (bench/wrk.py), installed as
# root where apt-get exists; otherwise the bench uses its own clients and says so, and the test
# of bench/wrk.py is skipped and says so.
wrk:
	@command -v wrk >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian's wrk for the benchmarks"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				--no-install-recommends wrk >/dev/null \
			|| echo "wrk not installed: the bench's point lookups use its own clients"; \
		else echo "no wrk and no root apt-get: the bench's point lookups use its own clients"; fi; }

# The GraphQL-over-HTTP audit (npm graphql-http, pinned by its lock file); without npm the test
# that needs it is skipped and says so.
tests/http/node_modules/.installed: tests/http/package.json tests/http/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --silent --no-audit --no-fund --prefix tests/http && touch $@; \
	else echo "npm not found: the GraphQL-over-HTTP audit test will be skipped"; fi

## Lint, format check and strict typing.
check: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Benchmarks (on demand, not part of the suite): every figure of the performance issue against
## a raw asyncpg baseline, last line `BENCH {...}` (bench/README.md).
bench: $(VENV)/.installed-dev wrk
	$(BIN)/python -m bench.suite

## settleClaim alone, with its correctness checks (bench/settle.py; options there).
bench-settle: $(VENV)/.installed-dev
	$(BIN)/python -m bench.settle

# A dashboard's figures over 1,000,000 generated claims (about 4 minutes on 2 cores).
.PHONY: bench-dashboard
bench-dashboard: $(VENV)/.installed-dev
	$(BIN)/python -m bench.dashboard

clean-var:
	rm -rf var
