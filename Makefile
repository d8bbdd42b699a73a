# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test test-fast browser lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

## Run the whole pipeline on built-in synthetic data: train, evaluate, extract, search, picture.
demo: setup
	$(BIN)/reid-stra demo --out demo_output

## Lint and run the test suite (what CI runs). The HTML report's browser test needs Chromium:
## installed here where the machine allows it (root with apt-get), skipped cleanly elsewhere.
test: setup browser
	$(BIN)/ruff check reid_stra tests benchmarks
	$(BIN)/python -m pytest -q

## The quick subset for the edit-test loop: every test not marked slow (CI runs all of them).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 && echo "installed chromium"; } || \
	  echo "no Chromium: the report's browser test will be skipped"

lint: setup
	$(BIN)/ruff check reid_stra tests benchmarks
	$(BIN)/ruff format --check reid_stra tests benchmarks

format: setup
	$(BIN)/ruff format reid_stra tests benchmarks
	$(BIN)/ruff check --fix reid_stra tests benchmarks

clean:
	rm -rf $(VENV) demo_output .pytest_cache .ruff_cache
