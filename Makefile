# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
# Each installs the project from the lock file into .venv first (uv, itself pinned).
PYTHON ?= python3.11
UV_VERSION := 0.13.8
UV := .tools/bin/uv
VENV := .venv
export UV_FIND_LINKS ?= $(PIP_FIND_LINKS)
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Bytecode compiled at install, as pip does: each fresh process (a run, its temporary Prefect
# server, the load check) otherwise recompiles every module it imports, ~half its import time.
export UV_COMPILE_BYTECODE ?= 1
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90
export PREFECT_HOME ?= $(CURDIR)/.prefect
export BENTOML_HOME ?= $(CURDIR)/.bentoml
export DO_NOT_TRACK ?= true

.PHONY: run test test-fast install install-test lint clean

run: install
	$(VENV)/bin/flywheel run

# One pytest worker (pytest-xdist) per core, two to four, each test file whole on one worker: a
# module's tests share a project and its servers in file order. Files go out in collection
# order (the long e2e modules first), not xdist's default of most tests first. Past four
# workers the end-to-end modules' servers contend more than they gain.
# `make test PYTEST_ARGS=`: one process.
PYTEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; [ $$n -lt 2 ] && n=2; echo $$n)
PYTEST_ARGS ?= -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: install-test
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# The inner loop, under a minute: the pure unit tests, the data contracts and the model
# behaviour tests, without the ones marked slow; no install step (run `make install-test`
# once), no servers started. Two workers: each trains the model tests' session model once.
FAST_ARGS ?= -n 2 -q
test-fast:
	$(VENV)/bin/python -m pytest tests/unit tests/data tests/model -m "not slow" $(FAST_ARGS)

install: $(UV)
	$(UV) sync --frozen --no-dev
	$(VENV)/bin/flywheel pull-data

install-test: $(UV)
	bash infra/system/install-packages.sh
	$(UV) sync --frozen --no-dev --extra test --extra prod
	$(VENV)/bin/flywheel pull-data

lint: install-test
	$(VENV)/bin/ruff check src pipelines tests benchmarks
	$(VENV)/bin/mypy src
	$(VENV)/bin/lint-imports

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

clean:
	rm -rf artifacts mlruns mlflow.db .prefect .bentoml
