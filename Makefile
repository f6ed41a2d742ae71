# Catalog Sync. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export CATALOG_SYNC_HOME ?= $(CURDIR)/.state
export AIRFLOW_HOME ?= $(CATALOG_SYNC_HOME)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS := admin:admin
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE := $(AIRFLOW_HOME)/passwords.json
export AIRFLOW__API__PORT ?= 8080
# A development machine (2 cores is enough): the UI and the sandbox answer on loopback only, and Airflow runs a
# handful of task processes and one API worker instead of its defaults (0.0.0.0, 32). Set these before `make run`
# to open them deliberately, e.g. `AIRFLOW__API__HOST=0.0.0.0 make run` (README, "Who can reach make run").
export AIRFLOW__API__HOST ?= 127.0.0.1
export AIRFLOW__API__WORKERS ?= 1
export AIRFLOW__CORE__PARALLELISM ?= 4
export CATALOG_SYNC_SANDBOX_HOST ?= 127.0.0.1
export PATH := $(BIN):$(PATH)

.PHONY: help venv run stop test lint freeze clean bench bench-quick soak

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# The development environment: the runtime pins, the sandbox's and the tools' pins (requirements-dev.txt), the
# product package and the sandbox package (sandbox/), both editable. Production installs requirements.txt only.
$(STAMP): requirements.txt requirements-dev.txt sandbox/requirements.txt pyproject.toml sandbox/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Catalog Sync needs $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e . -e ./sandbox
	touch $(STAMP)

venv: $(STAMP) ## create .venv with the pinned requirements, the package and the sandbox

run: venv ## set everything up and run Catalog Sync on the embedded default (Airflow UI on :8080)
	bash scripts/run.sh

stop: ## stop what `make run` started
	bash scripts/stop.sh

test: venv ## run the whole test suite (PostgreSQL too when CATALOG_SYNC_TEST_PG_URL is set)
	bash scripts/install_test_tools.sh
	$(BIN)/python -m pytest --durations=25 $(PYTEST_ARGS)

bench: venv ## the benchmarks at full scale (100k/1M SKUs; about 45 min on 2 cores): a table, bench/results/*.json
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: venv ## the benchmarks at small scale: a smoke run in minutes
	$(BIN)/python -m bench --quick $(BENCH_ARGS)

soak: venv ## the reliability suite at full size (20,000 SKUs under faults); figures in RELIABILITY.md
	RELIABILITY_FIGURES=$(CURDIR)/bench/results/reliability_soak.json $(BIN)/python -m pytest -m soak -s tests/reliability $(PYTEST_ARGS)

lint: venv ## ruff (with the AIR rules) and mypy on the package
	$(BIN)/ruff check include sandbox dags plugins tests bench
	$(BIN)/mypy

freeze: venv ## rewrite requirements.txt (runtime) and requirements-dev.txt from what is installed in .venv
	$(BIN)/python scripts/freeze.py

clean: stop ## remove the local state (databases, Airflow home); keeps .venv
	rm -rf $(CATALOG_SYNC_HOME)
