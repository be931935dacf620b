# Two entry points, each building its own virtualenv first: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast browser demo lint bench bench-scale clean

$(BIN)/hkma-tracker: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/hkma-tracker  ## live run against HKMA (exit 3 if a source is unreachable)
	$(BIN)/hkma-tracker run

demo: $(BIN)/hkma-tracker  ## day 1 / day 2 on a recorded HKMA site served from 127.0.0.1
	$(BIN)/hkma-tracker demo

lint: $(BIN)/hkma-tracker  ## ruff lint, ruff format check, mypy, the layers' import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint  ## lint, format check and the whole test suite (the browser test needs `make browser`)
	$(BIN)/python -m pytest

test-fast: $(BIN)/hkma-tracker  ## the pure tier only: seconds
	$(BIN)/python -m pytest -m "not crawl"

browser:  ## Debian's Chromium for the digest rendering test (root and apt; CI runs this)
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

bench: $(BIN)/hkma-tracker
	$(BIN)/python bench/rerun.py
	$(BIN)/python bench/tagging.py
	$(BIN)/python bench/records.py
	$(BIN)/python bench/report.py
	$(BIN)/python bench/sweep.py
	$(BIN)/python bench/big_html.py
	$(BIN)/python bench/kill_pass.py

bench-scale: $(BIN)/hkma-tracker  ## histories of 10k and 100k versions (about 15 minutes; see the script for 1M)
	$(BIN)/python bench/scale.py

clean:
	rm -rf $(VENV) build *.egg-info
