# Two commands set everything up on a fresh machine: `make run` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DB := outputs/market/demo.duckdb

.DEFAULT_GOAL := help
.PHONY: help install run demo-db test test-full test-slow bench lint check-config clean

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "make: $(PY) not found; install Python 3.11 or run 'make PY=python3 ...'"; exit 2; }
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e . --group dev
	$(BIN)/python -c "from bench.data import ensure_bytecode; ensure_bytecode()"
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its dev tools

$(DEMO_DB): | $(STAMP)
	$(BIN)/python -m producers.demo db.path=$(DEMO_DB)
	$(BIN)/python -m producers.analytics db.path=$(DEMO_DB)

demo-db: $(DEMO_DB)  ## build the seeded synthetic demo market DB (skipped when present)

run: $(STAMP) $(DEMO_DB)  ## install, build the demo DB if missing, run the demo backtest
	$(BIN)/python -m runner +experiment=backtest

test: $(STAMP)  ## fast test suite (no slow tests)
	$(BIN)/python -m pytest -q -m "not slow"

test-full: $(STAMP)  ## every test, slow ones included
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)  ## only the slow tests (fault trials, fuzzing, whole-history providers, README); CI runs them after make test
	$(BIN)/python -m pytest -q -m slow

check-config: $(STAMP) $(DEMO_DB)  ## dry-run every experiment in conf/experiment (compose, validate, open DB read-only)
	$(BIN)/python -m runner.check_config

bench: $(STAMP)  ## benchmarks with ratios; writes bench/results/*.json
	$(BIN)/python -m bench

lint: $(STAMP)  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:  ## remove the venv and generated outputs
	rm -rf $(VENV) outputs/* multirun .pytest_cache .hypothesis
