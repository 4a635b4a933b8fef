# riskstrat: the two set-up commands of README.md. Each creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	touch $(STAMP)

## Run the main job end to end on a fresh synthetic population (embedded defaults).
demo: $(STAMP)
	$(BIN)/riskstrat demo --workdir demo-work

## Run the whole test suite (Spark needs Java 17+, the page tests Chromium: installed here when missing).
test: $(STAMP)
	bash scripts/ensure-java.sh
	bash scripts/ensure-chromium.sh
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check riskstrat tests benchmarks

clean:
	rm -rf $(VENV) demo-work .pytest_cache
