# The two commands of the README: `make run` and `make test`. Both create .venv on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= $(or $(CARRYBOT_CONFIG),config.example.toml)

.PHONY: run test lint typecheck unit bench clean browser-deps deploy-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(BIN)/carrybot db upgrade --config $(CONFIG)
	$(BIN)/carrybot run --config $(CONFIG)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy bot strategies tests

# The dashboard's browser test drives Debian's chromium; under CI=true it is installed when
# missing (elsewhere the test skips and says how to install it).
browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$CI" = "true" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "note: /usr/bin/chromium is missing; the browser test skips (apt-get install chromium)"; fi; \
	fi

# Debian's docker-compose validates docker-compose.yml in tests/deploy (installed under CI=true).
deploy-deps:
	@if ! command -v docker-compose >/dev/null; then \
	  if [ "$$CI" = "true" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose; \
	  else echo "note: docker-compose is missing; its test skips (apt-get install docker-compose)"; fi; \
	fi

# One xdist worker per core. The bot-process tests (tests/e2e) start first (tests/conftest.py)
# and --maxschedchunk 1 hands tests out one or two at a time, so those slow tests spread over
# every worker instead of all landing in the first worker's initial batch (the run's tail).
test: lint typecheck browser-deps deploy-deps
	$(BIN)/python -m pytest -n auto --maxschedchunk 1

bench: $(VENV)/.dev-installed
	for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
