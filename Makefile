# Every target does its own set-up: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LOADTEST_STAMP := $(VENV)/.loadtest-stamp

.PHONY: demo test lint typecheck unit loadtest clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/broadcaster demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Headless Chromium for the web console's browser tests: Debian's package, which Playwright drives
# (it never downloads a browser). Installed only when missing (CI runs as root).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	DEBIAN_FRONTEND=noninteractive apt-get install -y chromium || \
	  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

test: $(STAMP) $(CHROMIUM)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

$(LOADTEST_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev,loadtest]'
	touch $(LOADTEST_STAMP)

# Every scenario, then loadtest/results/latest.{json,md}, charts and profile (3 to 4 minutes).
# LOADTEST_ARGS: e.g. --quick --out /tmp/lt, or scenario names (python -m loadtest --list).
loadtest: $(LOADTEST_STAMP)
	$(BIN)/python -m loadtest $(LOADTEST_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
