# The two set-up commands of README.md; each works on its own on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint install install-test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'

# Embedded default: SQLite file in this folder, in-process queue, API on 127.0.0.1:8000.
run: install
	$(BIN)/syncd migrate
	$(BIN)/syncd run

test: install-test
	$(BIN)/ruff check syncd adapters tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -p no:cacheprovider -ra

lint: install-test
	$(BIN)/ruff check syncd adapters tests bench
	$(BIN)/ruff format --check syncd adapters tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# Needs PostgreSQL and RabbitMQ (as `make test`); each prints ratios against its baseline.
bench: install-test
	$(BIN)/python -m bench.bench_sync
	$(BIN)/python -m bench.bench_memory
	$(BIN)/python -m bench.bench_api
	$(BIN)/python -m bench.bench_latency

clean:
	rm -rf $(VENV) syncd.sqlite3*
