# MedicalCor: `make dev` runs the whole stack, `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test bench lint format typecheck install system-tools clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found (Python 3.11+ is required; set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## Debian tools the tests need (prometheus/promtool, docker-compose v1). Installs what is missing.
system-tools:
	@bash .ci/system-tools

dev: install
	$(BIN)/medicalcor dev

test: install system-tools
	@bash .ci/pytest

## Every benchmark, then bench/REPORT.md. BENCH_QUICK=1: shortest settings (a check that
## they run); BENCH_ARGS: some benchmarks only (`gateway soak`) or `--report-only`.
bench: install
	BENCH_QUICK=$(BENCH_QUICK) $(BIN)/python -m bench $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
