# One task runner. `make demo` and `make test` work on a fresh clone with only Python >= 3.11.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The bench environment also holds the peer libraries; python-cq needs Python >= 3.12,
# so prefer a 3.12+ interpreter for it when the machine has one.
BENCH_PYTHON ?= $(shell for p in python3.13 python3.12 $$(ls -d /root/.pyenv/versions/3.1[23]*/bin/python3 2>/dev/null) python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null && { echo $$p; break; }; done)
BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

# docs/migrating.md's "before" blocks run against the real peer libraries, pinned in
# tests/docs/peers/requirements.txt, in an environment of their own (`make peers-env`, a step of
# `make test`): python-cq needs Python >= 3.12, dockyard's own .venv may be 3.11. The first
# interpreter >= 3.12 among python3.13, python3.12 and pyenv's versions; or PEERS_PYTHON=...
PEERS_PYTHON ?= $(shell for p in python3.13 python3.12 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python3 2>/dev/null); do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null && { echo $$p; break; }; done)
PEERS_VENV ?= .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed

.PHONY: demo serve test test-stress lint typecheck bench docs docs-test format clean env peers-env kafka

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("dockyard needs Python >= 3.11") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,docs]'
	touch $@

env: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m examples.shop

# The shop's HTTP API (FastAPI) and its live order page on http://$(HOST):$(PORT)/, on a new
# SQLite file; `make serve HOST=0.0.0.0 PORT=9000` to change where it listens.
HOST ?= 127.0.0.1
PORT ?= 8000
serve: $(STAMP)
	$(BIN)/python -m uvicorn examples.shop.http_fastapi:create_app --factory --host $(HOST) --port $(PORT)

# Tansu, a Kafka-compatible broker (from the dev extras), on 127.0.0.1:9092 in the background,
# for the tests marked `kafka` (without it they skip, saying so): `.ci/kafka`.
kafka: $(STAMP)
	PYTHON=$(BIN)/python .ci/kafka

test: $(STAMP) peers-env
	$(BIN)/pytest

# Without a Python >= 3.12 this says so and goes on: the before blocks' test then skips, and
# fails under CI=true.
peers-env:
	@if [ -z "$(PEERS_PYTHON)" ]; then \
	  echo "make: no Python >= 3.12 found (python3.13, python3.12, pyenv); $(PEERS_VENV) is not built and the tests of docs/migrating.md's before blocks will skip (fail under CI=true). Set PEERS_PYTHON=/path/to/python3.12 to build it." >&2; \
	else $(MAKE) --no-print-directory $(PEERS_STAMP); fi

$(PEERS_STAMP): tests/docs/peers/requirements.txt
	test -x $(PEERS_VENV)/bin/python || $(PEERS_PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet -r tests/docs/peers/requirements.txt
	touch $@

# The whole suite with every core busy and writing transactions held open on PostgreSQL;
# RUNS=5 runs it five times in a row (stops at the first failure).
RUNS ?= 1
test-stress: $(STAMP) peers-env
	$(BIN)/python -m tests.stress --runs $(RUNS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --config-file docs/tutorial/pyproject.toml docs/tutorial/bank docs/tutorial/tests docs/tutorial/conftest.py

# The documentation site (mkdocs.yml) into site/, every warning an error (a broken link or
# anchor, a missing page, an unreadable docstring); offline. `make docs-test` runs every code
# sample in the docs (tests/docs, also part of `make test`, which builds the site too).
# Never add --quiet: it hides the warnings from --strict too, and a broken link then passes.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-test: $(STAMP) peers-env
	$(BIN)/pytest tests/docs

$(BENCH_STAMP): pyproject.toml bench/requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(BENCH_PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[sqlite,postgres,cli]' -r bench/requirements.txt
	touch $@

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(PEERS_VENV) site .mypy_cache .pytest_cache .ruff_cache
