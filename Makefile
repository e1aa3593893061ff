# The two commands: `make run` (set up, then the main job on the embedded defaults)
# and `make test` (set up, then the suite). Nothing else needs installing by hand.
# `make lint` (ruff check and ruff format --check) is what CI runs before the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --editable .
	touch $(STAMP)

# The browser tests drive Debian's chromium through Playwright (never `playwright install`).
CHROMIUM := /usr/bin/chromium
SUDO     := $(if $(filter 0,$(shell id -u)),,sudo)

run: $(STAMP)
	$(BIN)/curator demo
	$(BIN)/curator app

# The test and lint commands also install the `test` extra (pytest, playwright, ruff) and the
# optional Ray extra, so that `--ray` is tested (the main job needs neither).
TEST_STAMP := $(VENV)/.test-installed

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --editable ".[test,ray]"
	touch $(TEST_STAMP)

test: $(TEST_STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest -q

# Everyday work: the suite without the tests marked slow (no browser test, so no chromium needed).
test-fast: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Where apt is missing (macOS, other distributions) the browser tests skip, saying so.
$(CHROMIUM):
	@if command -v apt-get >/dev/null; then \
		$(SUDO) apt-get install -y chromium || ($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium); \
	else \
		echo "no apt-get here: the browser tests will skip (they need Debian's chromium at $(CHROMIUM))"; \
	fi

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

# The environment, the default database and what the tool writes beside it (vectors, map
# files, job logs, uploads, runs, exports, `demo --full`).
clean:
	rm -rf $(VENV) curator.duckdb curator.duckdb.wal curator.duckdb.vectors curator.duckdb.maps \
		runs logs uploads export demo-full
