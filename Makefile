# Two entry points for a fresh machine: `make demo` runs the main job, `make test` the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

.PHONY: install demo test lint bench clean
install: $(STAMP)

demo: $(STAMP)
	$(BIN)/crmwatch demo

test: $(STAMP)
	scripts/install-chromium
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

# Every benchmark runs (a missed target does not stop the others); the summary table last.
# bench/peer needs Zircolite 3.7.0: PEER_ARGS='--zircolite DIR [--zircolite-python PY]', else it
# clones the tag into bench/out, and reports "not run" when it cannot.
PEER_ARGS ?=
bench: $(STAMP)
	-$(BIN)/python bench/ingest.py
	-$(BIN)/python bench/ingest_json.py
	-$(BIN)/python bench/detect.py
	-$(BIN)/python bench/scope.py
	-$(BIN)/python bench/notify.py
	-$(BIN)/python bench/incidents.py
	-$(BIN)/python bench/console.py
	-$(BIN)/python bench/watch.py
	-$(BIN)/python bench/startup.py
	-$(BIN)/python bench/precision.py
	-$(BIN)/python bench/peer.py $(PEER_ARGS)
	$(BIN)/python bench/summary.py

clean:
	rm -rf $(VENV) crmwatch.duckdb demo-out build
