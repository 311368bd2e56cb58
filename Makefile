# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HASH := $(shell cksum pyproject.toml | cut -d' ' -f1)
## Everything: the engine, the tests' and the benchmarks' extras (make test, make bench).
STAMP := $(VENV)/.installed-$(HASH)
## The engine alone: what the demo needs and nothing else (make run).
RUN_STAMP := $(VENV)/.installed-run-$(HASH)
SOURCES := app tests bench

.PHONY: install run test test-couchbase test-deps lint typecheck openapi bench clean

$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	rm -f $(VENV)/.installed-run-* && touch $(RUN_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	rm -f $(VENV)/.installed-* && touch $(STAMP) $(RUN_STAMP)

install: $(STAMP)

## Run the demo: a master, an edge and simulated devices on loopback, until Ctrl-C.
run: $(RUN_STAMP)
	$(PY) -m app demo

## Every check and test: lint, format, types, OpenAPI drift, the test suite. The store's
## tests run on their own, measuring the Couchbase backend's line coverage (at least
## 90 %, pyproject [tool.coverage]): tracing the whole suite would cost half its CPU time.
STORE_TESTS := tests/contract tests/unit/store tests/cluster
test: lint typecheck test-deps
	$(PY) -m app openapi --check
	$(PY) -m pytest $(addprefix --ignore=,$(STORE_TESTS))
	$(PY) -m pytest --cov --cov-report=term-missing --cov-fail-under=90 $(STORE_TESTS)

## The store contract suite and an XDCR smoke test against real Couchbase; starts none.
## ENGINE_TEST_COUCHBASE_URL=couchbase://USER:PASSWORD@HOST/BUCKET names a test bucket,
## ENGINE_TEST_COUCHBASE_EDGE_URL a bucket on a second cluster for XDCR (README).
test-couchbase: $(STAMP)
	@test -n "$$ENGINE_TEST_COUCHBASE_URL" || { \
	  echo "set ENGINE_TEST_COUCHBASE_URL=couchbase://USER:PASSWORD@HOST/BUCKET (README: Couchbase)" >&2; \
	  exit 2; }
	$(PY) -m pytest -m couchbase_cluster tests/contract tests/cluster

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
