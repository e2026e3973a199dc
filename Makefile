# Every target does its own set-up: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LOADTEST_STAMP := $(VENV)/.loadtest-stamp

.PHONY: deploy-tools demo test lint typecheck unit loadtest shape clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# PostGIS, the geometry engine of polygon and circle targets: Debian's package for the major
# version of the local PostgreSQL server (the newest under /usr/lib/postgresql, which the
# throwaway cluster uses too). Installed only when missing, like chromium.
PG_MAJOR ?= $(shell ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
POSTGIS := /usr/share/postgresql/$(PG_MAJOR)/extension/postgis.control
$(POSTGIS):
	@test -n "$(PG_MAJOR)" || { echo "no PostgreSQL server under /usr/lib/postgresql: install \
	  postgresql, then postgresql-<major>-postgis-3 (or set PG_MAJOR)"; exit 1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql-$(PG_MAJOR)-postgis-3 || \
	  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
	   postgresql-$(PG_MAJOR)-postgis-3)

demo: $(STAMP) $(POSTGIS)
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

# promtool checks the Prometheus alerting rules (deploy/prometheus); systemd-analyze the units
# (deploy/systemd). Debian's packages, installed only when missing.
PROMTOOL := /usr/bin/promtool
$(PROMTOOL):
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus || \
	  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus)
SYSTEMD_ANALYZE := /usr/bin/systemd-analyze
$(SYSTEMD_ANALYZE):
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd || \
	  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd)
deploy-tools: $(PROMTOOL) $(SYSTEMD_ANALYZE)

test: $(STAMP) $(CHROMIUM) $(POSTGIS) $(PROMTOOL) $(SYSTEMD_ANALYZE)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

$(LOADTEST_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev,loadtest]'
	touch $(LOADTEST_STAMP)

# Every scenario, then loadtest/results/latest.{json,md}, charts and profile (5 to 7 minutes).
# LOADTEST_ARGS: e.g. --quick --out /tmp/lt, or scenario names (python -m loadtest --list).
loadtest: $(LOADTEST_STAMP)
	$(BIN)/python -m loadtest $(LOADTEST_ARGS)

# The shape of the code: the five largest modules and the five most complex functions (radon's
# cyclomatic complexity; ruff's C90 caps every function at 12 in `make test`).
shape: $(STAMP)
	@echo "largest modules (lines):"
	@find broadcaster -name '*.py' -exec wc -l {} + | grep -v ' total$$' | sort -rn | head -5
	@echo "most complex functions (radon cc):"
	@$(BIN)/radon cc -j broadcaster | $(BIN)/python -c "import json, sys; \
	rows = [(b['complexity'], f'{f}:{b.get(\"classname\") + \".\" if b.get(\"classname\") else \"\"}{b[\"name\"]}') \
	        for f, blocks in json.load(sys.stdin).items() for b in blocks if b['type'] != 'class']; \
	print('\n'.join(f'{c:6} {n}' for c, n in sorted(rows, reverse=True)[:5]))"

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
