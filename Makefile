# riskstrat: the two set-up commands of README.md. Each creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Run the main job end to end on a fresh synthetic population (embedded defaults).
demo: $(STAMP)
	$(BIN)/riskstrat demo --workdir demo-work

## Run the whole test suite.
test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check riskstrat tests benchmarks

clean:
	rm -rf $(VENV) demo-work .pytest_cache
