# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
SOURCES := app tests sim drivers bench

.PHONY: install run test test-deps lint typecheck openapi bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

## Run the demo: a master, an edge and simulated devices on loopback, until Ctrl-C.
run: $(STAMP)
	$(PY) -m app demo

## Every check and test: lint, format, types, OpenAPI drift, the test suite.
test: lint typecheck test-deps
	$(PY) -m app openapi --check
	$(PY) -m pytest

## What the tests drive beyond Python: Debian packages (a browser, promtool), node packages.
test-deps: $(STAMP)
	tests/setup/system-packages.sh
	@if command -v npm >/dev/null; then npm ci --prefix tests/frontend --no-audit --no-fund --loglevel=error; \
	else echo "npm missing: the PlaceOS front-end library is not installed (its tests skip only without node)"; fi

lint: $(STAMP)
	$(VENV)/bin/ruff check $(SOURCES)
	$(VENV)/bin/ruff format --check $(SOURCES)

typecheck: $(STAMP)
	$(VENV)/bin/mypy

## The benchmarks: JSON results, PNG plots and a table in bench/results (a few minutes).
bench: $(STAMP)
	$(PY) -m bench

## Regenerate openapi/openapi.json from the app.
openapi: $(STAMP)
	$(PY) -m app openapi

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
