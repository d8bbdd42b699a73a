# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

## Run the whole pipeline on built-in synthetic data: train, evaluate, extract, search, picture.
demo: setup
	$(BIN)/reid-stra demo --out demo_output

## Lint and run the test suite (what CI runs).
test: setup
	$(BIN)/ruff check reid_stra tests benchmarks
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check reid_stra tests benchmarks
	$(BIN)/ruff format --check reid_stra tests benchmarks

format: setup
	$(BIN)/ruff format reid_stra tests benchmarks
	$(BIN)/ruff check --fix reid_stra tests benchmarks

clean:
	rm -rf $(VENV) demo_output .pytest_cache .ruff_cache
